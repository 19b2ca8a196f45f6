/*
 * Loads a model directory (see model_files.h): the weights are mapped
 * (model.safetensors or the shards named by model.safetensors.index.json),
 * then config.json's model_type picks the family file in host/arch that
 * reads its config fields and binds every tensor it needs through the
 * emb_weights_* lookup below (dtype and shape checked against what
 * config.json implies) into the recipe. The sentence-transformers
 * files (modules.json, pooling, Dense, Normalize, sentence_bert_config.json,
 * config_sentence_transformers.json) are read last. Errors name the file and
 * field; the whole message is prefixed with the model directory.
 */
#include "model_files.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "error.h"
#include "json_util.h"
#include "arch.h"
#include "safetensors.h"

/* One mapped weight file and the path shown in messages. */
typedef struct {
    st_file *st;
} mf_file;

/* A weight_map entry of a sharded index: tensor name -> shard. */
typedef struct {
    char *name;
    size_t file;
} mf_index_entry;

struct emb_weights {
    mf_file *files;           /* every safetensors file we mapped (encoder + Dense) */
    size_t n_files, cap_files;
    size_t n_encoder_files;   /* files[0 .. n) hold the encoder */
    mf_index_entry *index;    /* sorted by name; NULL when not sharded */
    size_t n_index;
    const char *prefix;       /* set by the family file: "", "bert.", ... */
};
typedef struct emb_weights mf_priv;

/* ---------------------------------------------------------------- paths */

static char *path_join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 2);
    if (!p) return NULL;
    memcpy(p, a, la);
    size_t o = la;
    if (la && a[la - 1] != '/' && lb) p[o++] = '/';
    memcpy(p + o, b, lb + 1);
    return p;
}

static int is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Something is at path (even a dangling symlink, a loop or a FIFO): the
 * loaders then open it and say precisely what is wrong with it, rather than
 * report it missing. */
static int is_present(const char *path) {
    struct stat sb;
    return lstat(path, &sb) == 0;
}

static int is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* ------------------------------------------------------ HF cache lookup */

/* A repo id is "org/name": two non-empty parts, neither "." nor "..". */
static int looks_like_repo_id(const char *s) {
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || !slash[1] || strchr(slash + 1, '/')) return 0;
    if (strncmp(s, "../", 3) == 0 || strncmp(s, "./", 2) == 0) return 0;
    if (strcmp(slash + 1, "..") == 0 || strcmp(slash + 1, ".") == 0) return 0;
    return 1;
}

/* The hub cache root, following huggingface_hub: $HF_HUB_CACHE, else
 * $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
 * ~/.cache/huggingface/hub. */
static char *hub_cache_root(void) {
    const char *e = getenv("HF_HUB_CACHE");
    if (e && *e) return strdup(e);
    e = getenv("HF_HOME");
    if (e && *e) return path_join(e, "hub");
    e = getenv("XDG_CACHE_HOME");
    if (e && *e) return path_join(e, "huggingface/hub");
    e = getenv("HOME");
    if (e && *e) return path_join(e, ".cache/huggingface/hub");
    return NULL;
}

/* Reads refs/main (a commit hash written by huggingface_hub) into a snapshot
 * path; NULL when absent or unusable. */
static char *snapshot_from_ref(const char *repo_dir) {
    char *ref = path_join(repo_dir, "refs/main");
    char *text = NULL;
    size_t n = 0;
    /* Through the model-file helper: a FIFO or device here must not block. */
    emb_status s = ref ? ju_read_bytes(ref, "refs/main", 127, &text, &n, NULL) : EMB_ERR_NOMEM;
    free(ref);
    if (s) return NULL;
    char hash[128] = {0};
    memcpy(hash, text, n);
    free(text);
    while (n && (hash[n - 1] == '\n' || hash[n - 1] == '\r' || hash[n - 1] == ' ')) hash[--n] = 0;
    if (!n || !st_shard_name_ok(hash)) return NULL;
    char rel[160];
    snprintf(rel, sizeof rel, "snapshots/%s", hash);
    char *snap = path_join(repo_dir, rel);
    if (snap && !is_dir(snap)) {
        free(snap);
        snap = NULL;
    }
    return snap;
}

/* Without refs/main: the most recently modified snapshot holding a config.json. */
static char *newest_snapshot(const char *repo_dir) {
    char *snaps = path_join(repo_dir, "snapshots");
    DIR *d = snaps ? opendir(snaps) : NULL;
    char *best = NULL;
    time_t best_t = 0;
    for (struct dirent *de; d && (de = readdir(d));) {
        if (de->d_name[0] == '.') continue;
        char *p = path_join(snaps, de->d_name);
        char *cfg = p ? path_join(p, "config.json") : NULL;
        struct stat sb;
        if (cfg && stat(p, &sb) == 0 && S_ISDIR(sb.st_mode) && is_file(cfg) &&
            (!best || sb.st_mtime > best_t)) {
            free(best);
            best = p;
            p = NULL;
            best_t = sb.st_mtime;
        }
        free(p);
        free(cfg);
    }
    if (d) closedir(d);
    free(snaps);
    return best;
}

emb_status emb_mf_resolve(const char *path_or_repo, char **dir_out, emb_error *err) {
    *dir_out = NULL;
    if (!path_or_repo || !*path_or_repo)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "empty model path");
    if (is_dir(path_or_repo)) {
        *dir_out = strdup(path_or_repo);
        return *dir_out ? EMB_OK : emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    }
    if (!looks_like_repo_id(path_or_repo))
        return emb_fail(err, EMB_ERR_IO, "model \"%s\": no such directory (and not an org/name repo id)",
                        path_or_repo);
    char *root = hub_cache_root();
    if (!root) return emb_fail(err, EMB_ERR_IO, "model \"%s\": no such directory, and no Hugging Face "
                               "cache location (HF_HOME and HOME unset)", path_or_repo);
    /* models--org--name: huggingface_hub replaces "/" with "--". */
    size_t n = strlen(path_or_repo);
    char *folder = malloc(n + 16);
    if (!folder) {
        free(root);
        return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    }
    char *o = folder + sprintf(folder, "models--");
    for (const char *p = path_or_repo; *p; p++) {
        if (*p == '/') {
            *o++ = '-';
            *o++ = '-';
        } else {
            *o++ = *p;
        }
    }
    *o = 0;
    char *repo_dir = path_join(root, folder);
    free(folder);
    char *snap = NULL;
    if (repo_dir) {
        snap = snapshot_from_ref(repo_dir);
        if (!snap) snap = newest_snapshot(repo_dir);
    }
    emb_status s = EMB_OK;
    if (!snap)
        s = emb_fail(err, EMB_ERR_IO, "model \"%s\": no such directory, and no snapshot in the Hugging "
                     "Face cache at %s", path_or_repo, repo_dir ? repo_dir : root);
    free(repo_dir);
    free(root);
    *dir_out = snap;
    return s;
}

/* ------------------------------------------------------------ weights */

static emb_status priv_add_file(mf_priv *p, st_file *st, emb_error *err) {
    if (p->n_files == p->cap_files) {
        size_t nc = p->cap_files ? p->cap_files * 2 : 4;
        mf_file *nf = realloc(p->files, nc * sizeof *nf);
        if (!nf) {
            st_close(st);
            return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
        }
        p->files = nf;
        p->cap_files = nc;
    }
    p->files[p->n_files++].st = st;
    return EMB_OK;
}

static int cmp_index(const void *a, const void *b) {
    return strcmp(((const mf_index_entry *)a)->name, ((const mf_index_entry *)b)->name);
}

/* model.safetensors.index.json: {"metadata": {...}, "weight_map": {tensor: shard}}.
 * Each distinct shard is mapped once; shard names must be bare file names so
 * that a crafted index cannot reach outside the model directory. */
static emb_status open_sharded(const char *dir, const char *index_path, mf_priv *p, emb_error *err) {
    const char *shown = "model.safetensors.index.json";
    cJSON *j = NULL;
    emb_status s = ju_read_file(index_path, shown, &j, err);
    if (s) return s;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(j, "weight_map");
    /* ju_read_file already refused duplicate keys, so each tensor maps to one shard. */
    if (!cJSON_IsObject(j) || !cJSON_IsObject(wm))
        s = emb_fail(err, EMB_ERR_FORMAT, "%s: missing object \"weight_map\"", shown);
    size_t n = s ? 0 : (size_t)cJSON_GetArraySize(wm);
    if (!s && n == 0) s = emb_fail(err, EMB_ERR_FORMAT, "%s: weight_map is empty", shown);
    if (!s && !(p->index = calloc(n, sizeof *p->index))) s = emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    for (const cJSON *e = s ? NULL : wm->child; e && !s; e = e->next) {
        if (!cJSON_IsString(e)) {
            s = emb_fail(err, EMB_ERR_FORMAT, "%s: weight_map: shard of tensor \"%s\" must be a string",
                         shown, e->string);
            break;
        }
        const char *shard = e->valuestring;
        if (!st_shard_name_ok(shard)) {
            s = emb_fail(err, EMB_ERR_FORMAT,
                         "%s: weight_map: tensor \"%s\": shard \"%.200s\" must be a bare file name in the "
                         "model directory", shown, e->string, shard);
            break;
        }
        size_t fi = p->n_files;
        for (size_t k = 0; k < p->n_files; k++)
            if (strcmp(p->files[k].st->origin, shard) == 0) fi = k;
        if (fi == p->n_files) {
            char *sp = path_join(dir, shard);
            st_file *st = NULL;
            s = sp ? st_open(sp, shard, &st, err) : emb_fail(err, EMB_ERR_NOMEM, "out of memory");
            free(sp);
            if (!s) s = priv_add_file(p, st, err);
            if (s) {
                if (err && err->code != EMB_ERR_NOMEM)
                    emb_fail_prefix(err, "%s: shard of tensor \"%s\"", shown, e->string);
                break;
            }
        }
        mf_index_entry *ie = &p->index[p->n_index++];
        ie->file = fi;
        if (!(ie->name = strdup(e->string))) s = emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    }
    cJSON_Delete(j);
    if (!s) qsort(p->index, p->n_index, sizeof *p->index, cmp_index);
    return s;
}

static emb_status open_weights(const char *dir, mf_priv *p, emb_error *err) {
    char *single = path_join(dir, "model.safetensors");
    char *index = path_join(dir, "model.safetensors.index.json");
    emb_status s = EMB_OK;
    if (!single || !index) {
        s = emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    } else if (is_present(single)) {
        st_file *st = NULL;
        s = st_open(single, "model.safetensors", &st, err);
        if (!s) s = priv_add_file(p, st, err);
    } else if (is_present(index)) {
        s = open_sharded(dir, index, p, err);
    } else {
        char *bin = path_join(dir, "pytorch_model.bin");
        if (bin && is_file(bin))
            s = emb_fail(err, EMB_ERR_UNSUPPORTED,
                         "pytorch_model.bin: PyTorch pickles are not supported; convert the weights to "
                         "model.safetensors (e.g. with the safetensors convert script)");
        else
            s = emb_fail(err, EMB_ERR_IO, "no model.safetensors or model.safetensors.index.json");
        free(bin);
    }
    free(single);
    free(index);
    p->n_encoder_files = p->n_files;
    return s;
}

/* Finds an encoder tensor by full name; *origin gets the file it came from. */
static emb_status find_raw(const mf_priv *p, const char *name, const st_tensor **out, const char **origin,
                           emb_error *err) {
    *out = NULL;
    if (p->index) {
        mf_index_entry key = {.name = (char *)name};
        const mf_index_entry *ie = bsearch(&key, p->index, p->n_index, sizeof *p->index, cmp_index);
        if (!ie) return EMB_OK;
        const st_file *st = p->files[ie->file].st;
        *origin = st->origin;
        *out = st_find(st, name);
        if (!*out)
            return emb_fail(err, EMB_ERR_FORMAT,
                            "model.safetensors.index.json: tensor \"%s\" is mapped to shard \"%s\", which "
                            "does not contain it", name, st->origin);
        return EMB_OK;
    }
    for (size_t i = 0; i < p->n_encoder_files; i++) {
        if ((*out = st_find(p->files[i].st, name)) != NULL) {
            *origin = p->files[i].st->origin;
            return EMB_OK;
        }
    }
    return EMB_OK;
}

static int st_to_emb_dtype(st_dtype d, emb_dtype *out) {
    switch (d) {
    case ST_F32: *out = EMB_DTYPE_F32; return 1;
    case ST_F16: *out = EMB_DTYPE_F16; return 1;
    case ST_BF16: *out = EMB_DTYPE_BF16; return 1;
    default: return 0;
    }
}

/* Checks one tensor's dtype and shape against the expected [d0] or [d0, d1]
 * and fills the view. origin/name appear in every message. */
static emb_status check_tensor(const st_tensor *t, const char *origin, const char *shown_name, int ndim,
                               int64_t d0, int64_t d1, emb_tensor *dst, emb_error *err) {
    if (!st_to_emb_dtype(t->dtype, &dst->dtype))
        return emb_fail(err, EMB_ERR_FORMAT, "%s: tensor \"%s\": dtype %s, expected F32, F16 or BF16", origin,
                        shown_name, st_dtype_name(t->dtype));
    int64_t want[2] = {d0, d1};
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == (uint64_t)want[i];
    if (!ok) {
        char got[160] = "[", exp[64];
        size_t o = 1;
        for (int i = 0; i < t->ndim && o < sizeof got - 24; i++)
            o += (size_t)snprintf(got + o, sizeof got - o, "%s%llu", i ? ", " : "",
                                  (unsigned long long)t->shape[i]);
        snprintf(got + o, sizeof got - o, "]");
        if (ndim == 1) snprintf(exp, sizeof exp, "[%lld]", (long long)d0);
        else snprintf(exp, sizeof exp, "[%lld, %lld]", (long long)d0, (long long)d1);
        return emb_fail(err, EMB_ERR_FORMAT, "%s: tensor \"%s\": shape %s, config.json implies %s", origin,
                        shown_name, got, exp);
    }
    dst->data = t->data;
    dst->ndim = ndim;
    dst->shape[0] = d0;
    dst->shape[1] = ndim > 1 ? d1 : 0;
    dst->name = t->name;
    return EMB_OK;
}

/* Binds prefix+name; LayerNorm.weight/bias fall back to the TF-era
 * gamma/beta names that some converted checkpoints still carry. */
static emb_status bind(const mf_priv *p, const char *name, int ndim, int64_t d0, int64_t d1,
                       emb_tensor *dst, emb_error *err) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", emb_weights_prefix(p), name);
    const st_tensor *t = NULL;
    const char *origin = NULL;
    emb_status s = find_raw(p, full, &t, &origin, err);
    if (s) return s;
    size_t n = strlen(full);
    if (!t && n > 17 && strstr(full, "LayerNorm.") &&
        (strcmp(full + n - 7, ".weight") == 0 || strcmp(full + n - 5, ".bias") == 0)) {
        char alt[256];
        int w = strcmp(full + n - 7, ".weight") == 0;
        snprintf(alt, sizeof alt, "%.*s%s", (int)(n - (w ? 7 : 5)), full, w ? ".gamma" : ".beta");
        if ((s = find_raw(p, alt, &t, &origin, err))) return s;
    }
    if (!t)
        return emb_fail(err, EMB_ERR_FORMAT, "%s: missing tensor \"%s\"",
                        p->index ? "model.safetensors.index.json" : p->files[0].st->origin, full);
    return check_tensor(t, origin, full, ndim, d0, d1, dst, err);
}

emb_status emb_weights_bind(const emb_weights *p, const char *name, int ndim, int64_t d0, int64_t d1,
                            emb_tensor *dst, emb_error *err) {
    return bind(p, name, ndim, d0, d1, dst, err);
}

emb_status emb_weights_bind_opt(const emb_weights *p, const char *name, int ndim, int64_t d0,
                                int64_t d1, emb_tensor *dst, emb_error *err) {
    memset(dst, 0, sizeof *dst);
    if (!emb_weights_has(p, name)) return EMB_OK;
    return bind(p, name, ndim, d0, d1, dst, err);
}

void emb_weights_set_prefix(emb_weights *p, const char *prefix) { p->prefix = prefix; }

const char *emb_weights_prefix(const emb_weights *p) { return p->prefix ? p->prefix : ""; }

int emb_weights_has(const emb_weights *p, const char *name) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", emb_weights_prefix(p), name);
    const st_tensor *t = NULL;
    const char *origin = NULL;
    emb_error e = {0};
    return find_raw(p, full, &t, &origin, &e) == EMB_OK && t != NULL;
}

/* Tensors named prefix + layer_prefix + K with K >= layers mean config.json
 * and the weights disagree; running with fewer layers would be silently wrong. */
emb_status emb_weights_check_layers(const emb_weights *p, const char *layer_prefix, int layers,
                                    const char *count_field, emb_error *err) {
    char pre[128];
    int pl = snprintf(pre, sizeof pre, "%s%s", emb_weights_prefix(p), layer_prefix);
    for (size_t f = 0; f < p->n_encoder_files; f++) {
        const st_file *st = p->files[f].st;
        for (size_t i = 0; i < st->n_tensors; i++) {
            const char *nm = st->tensors[i].name;
            if (strncmp(nm, pre, (size_t)pl) != 0) continue;
            char *end;
            long k = strtol(nm + pl, &end, 10);
            if (end != nm + pl && *end == '.' && k >= layers)
                return emb_fail(err, EMB_ERR_FORMAT,
                                "%s: tensor \"%s\" belongs to layer %ld, but config.json %s is %d",
                                st->origin, nm, k, count_field, layers);
        }
    }
    return EMB_OK;
}

/* --------------------------------------------- sentence-transformers */

typedef struct {
    char *path;   /* owned, relative to the model dir */
    const char *kind;
} mf_module;

/* "sentence_transformers.models.Pooling" (or any later module path of
 * sentence-transformers) -> "Pooling"; NULL for foreign classes. */
static const char *st_module_kind(const char *type) {
    if (strncmp(type, "sentence_transformers.", 22) != 0) return NULL;
    const char *dot = strrchr(type, '.');
    return dot ? dot + 1 : NULL;
}

static emb_status read_rel_json(const char *dir, const char *rel, cJSON **out, emb_error *err) {
    char *p = path_join(dir, rel);
    if (!p) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    emb_status s = ju_read_file(p, rel, out, err);
    free(p);
    return s;
}

/* A module folder must resolve (symlinks followed) to the model directory or
 * a folder inside it. Files inside may be symlinks anywhere: the Hugging Face
 * cache links every file to ../../blobs/. */
static emb_status check_module_dir(const char *dir, const char *rel, const char *where, emb_error *err) {
    if (!*rel) return EMB_OK;
    char *p = path_join(dir, rel);
    if (!p) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    char *root = realpath(dir, NULL), *real = realpath(p, NULL);
    free(p);
    emb_status s = EMB_OK;
    if (!root) {
        s = emb_fail(err, EMB_ERR_IO, "%s: cannot resolve the model directory: %s", where, strerror(errno));
    } else if (!real) {
        /* Missing: the module's loader names the file it needs. */
        if (errno != ENOENT)
            s = emb_fail(err, EMB_ERR_IO, "%s: folder \"%.200s\": %s", where, rel, strerror(errno));
    } else {
        size_t n = strlen(root);
        int inside = strncmp(real, root, n) == 0 && (real[n] == '/' || real[n] == 0 || (n == 1 && root[0] == '/'));
        if (!inside)
            s = emb_fail(err, EMB_ERR_FORMAT,
                         "%s: folder \"%.200s\" resolves to %.300s, outside the model directory", where, rel, real);
    }
    free(root);
    free(real);
    return s;
}

static const struct {
    const char *mode;
    const char *legacy;
    int bit;
} pool_modes[] = {
    /* The order sentence-transformers concatenates legacy modes in, which is
     * also the order of the EMB_POOL_* bits. */
    {"cls", "pooling_mode_cls_token", EMB_POOL_CLS},
    {"max", "pooling_mode_max_tokens", EMB_POOL_MAX},
    {"mean", "pooling_mode_mean_tokens", EMB_POOL_MEAN},
    {"mean_sqrt_len_tokens", "pooling_mode_mean_sqrt_len_tokens", EMB_POOL_MEAN_SQRT_LEN},
    {"weightedmean", "pooling_mode_weightedmean_tokens", EMB_POOL_WEIGHTED_MEAN},
    {"lasttoken", "pooling_mode_lasttoken", EMB_POOL_LAST_TOKEN},
};
#define N_POOL_MODES (int)(sizeof pool_modes / sizeof pool_modes[0])

static int pool_mode_index(const char *s) {
    for (int i = 0; i < N_POOL_MODES; i++)
        if (strcmp(s, pool_modes[i].mode) == 0) return i;
    return -1;
}

static emb_status load_pooling(const char *dir, const char *rel, emb_model_files *mf, emb_error *err) {
    char shown[512];
    snprintf(shown, sizeof shown, "%s%sconfig.json", rel, *rel ? "/" : "");
    cJSON *j = NULL;
    emb_status s = read_rel_json(dir, shown, &j, err);
    if (s) return s;
    emb_st_config *st = &mf->st;
    int dim = 0, present = 0;
    if (!cJSON_IsObject(j)) s = emb_fail(err, EMB_ERR_FORMAT, "%s: not a JSON object", shown);
    if (!s) s = ju_get_int(j, "word_embedding_dimension", shown, 1, ARCH_MAX_HIDDEN, &dim, &present, err);
    if (!s && !present) s = ju_get_int(j, "embedding_dimension", shown, 1, ARCH_MAX_HIDDEN, &dim, &present, err);
    if (!s && !present) s = emb_fail(err, EMB_ERR_FORMAT, "%s: missing field \"word_embedding_dimension\"", shown);
    if (!s && dim != mf->r.hidden)
        s = emb_fail(err, EMB_ERR_FORMAT, "%s: word_embedding_dimension %d differs from config.json hidden_size %d",
                     shown, dim, mf->r.hidden);
    st->pooling_dim = dim;

    const cJSON *pm = s ? NULL : cJSON_GetObjectItemCaseSensitive(j, "pooling_mode");
    int modes = 0;
    if (!s && pm && !cJSON_IsNull(pm)) {
        /* The newer form wins over the booleans, as in sentence-transformers. */
        int last = -1;
        const cJSON *one = cJSON_IsString(pm) ? pm : NULL;
        if (!one && (!cJSON_IsArray(pm) || cJSON_GetArraySize(pm) == 0))
            s = emb_fail(err, EMB_ERR_FORMAT, "%s: field \"pooling_mode\" must be a string or a non-empty list",
                         shown);
        for (const cJSON *m = one ? one : (s ? NULL : pm->child); m && !s; m = one ? NULL : m->next) {
            int k = cJSON_IsString(m) ? pool_mode_index(m->valuestring) : -1;
            if (k < 0) {
                char *txt = cJSON_PrintUnformatted(m);
                s = emb_fail(err, EMB_ERR_FORMAT,
                             "%s: field \"pooling_mode\": unknown mode %.64s (cls, max, mean, "
                             "mean_sqrt_len_tokens, weightedmean, lasttoken)", shown, txt ? txt : "?");
                free(txt);
            } else if (k <= last) {
                /* Our bit set concatenates in the canonical order; another
                 * order (or a repeat) would give a different vector layout. */
                s = emb_fail(err, EMB_ERR_UNSUPPORTED,
                             "%s: field \"pooling_mode\": \"%s\" repeated or out of the order cls, max, mean, "
                             "mean_sqrt_len_tokens, weightedmean, lasttoken", shown, m->valuestring);
            } else {
                modes |= pool_modes[k].bit;
                last = k;
            }
        }
    } else {
        for (int i = 0; i < N_POOL_MODES && !s; i++) {
            int on = 0;
            s = ju_get_bool(j, pool_modes[i].legacy, shown, &on, NULL, err);
            if (on) modes |= pool_modes[i].bit;
        }
        if (!modes) modes = EMB_POOL_MEAN;   /* sentence-transformers' default when all are false */
    }
    st->pooling_modes = modes;
    st->include_prompt = 1;
    if (!s) s = ju_get_bool(j, "include_prompt", shown, &st->include_prompt, NULL, err);
    cJSON_Delete(j);
    return s;
}

static emb_status parse_dense_act(const cJSON *j, const char *shown, emb_act *out, emb_error *err) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "activation_function");
    *out = EMB_ACT_TANH;   /* Dense's default when the key is absent */
    if (!a) return EMB_OK;
    if (cJSON_IsNull(a)) {
        *out = EMB_ACT_IDENTITY;
        return EMB_OK;
    }
    if (!cJSON_IsString(a))
        return emb_fail(err, EMB_ERR_FORMAT, "%s: field \"activation_function\" must be a string", shown);
    static const struct {
        const char *name;
        emb_act act;
    } map[] = {
        {"torch.nn.modules.activation.Tanh", EMB_ACT_TANH},
        {"torch.nn.modules.linear.Identity", EMB_ACT_IDENTITY},
        {"torch.nn.modules.activation.ReLU", EMB_ACT_RELU},
        {"torch.nn.modules.activation.GELU", EMB_ACT_GELU},
        {"torch.nn.modules.activation.Sigmoid", EMB_ACT_SIGMOID},
        {"torch.nn.modules.activation.SiLU", EMB_ACT_SILU},
        {"torch.nn.Tanh", EMB_ACT_TANH},
        {"torch.nn.Identity", EMB_ACT_IDENTITY},
        {"torch.nn.ReLU", EMB_ACT_RELU},
        {"torch.nn.GELU", EMB_ACT_GELU},
        {"torch.nn.Sigmoid", EMB_ACT_SIGMOID},
        {"torch.nn.SiLU", EMB_ACT_SILU},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcmp(a->valuestring, map[i].name) == 0) {
            *out = map[i].act;
            return EMB_OK;
        }
    }
    return emb_fail(err, EMB_ERR_UNSUPPORTED, "%s: activation_function \"%.128s\" is not supported", shown,
                    a->valuestring);
}

static emb_status load_dense(const char *dir, const char *rel, int in_dim, emb_dense *d, mf_priv *p,
                             emb_error *err) {
    char shown[512];
    snprintf(shown, sizeof shown, "%s/config.json", rel);
    cJSON *j = NULL;
    emb_status s = read_rel_json(dir, shown, &j, err);
    if (s) return s;
    int present = 0;
    if (!cJSON_IsObject(j)) s = emb_fail(err, EMB_ERR_FORMAT, "%s: not a JSON object", shown);
    if (!s) s = ju_get_int(j, "in_features", shown, 1, INT_MAX, &d->in_features, &present, err);
    if (!s && !present) s = emb_fail(err, EMB_ERR_FORMAT, "%s: missing field \"in_features\"", shown);
    if (!s) s = ju_get_int(j, "out_features", shown, 1, INT_MAX, &d->out_features, &present, err);
    if (!s && !present) s = emb_fail(err, EMB_ERR_FORMAT, "%s: missing field \"out_features\"", shown);
    d->has_bias = 1;
    if (!s) s = ju_get_bool(j, "bias", shown, &d->has_bias, NULL, err);
    if (!s) s = parse_dense_act(j, shown, &d->act, err);
    cJSON_Delete(j);
    if (s) return s;
    if (d->in_features != in_dim)
        return emb_fail(err, EMB_ERR_FORMAT, "%s: in_features %d, but the module before it outputs %d", shown,
                        d->in_features, in_dim);

    char wrel[512];
    snprintf(wrel, sizeof wrel, "%s/model.safetensors", rel);
    char *wpath = path_join(dir, wrel);
    if (!wpath) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    if (!is_present(wpath)) {
        free(wpath);
        char brel[512];
        snprintf(brel, sizeof brel, "%s/pytorch_model.bin", rel);
        char *bpath = path_join(dir, brel);
        int bin = bpath && is_file(bpath);
        free(bpath);
        if (bin)
            return emb_fail(err, EMB_ERR_UNSUPPORTED,
                            "%s: PyTorch pickles are not supported; convert the Dense weights to %s", brel,
                            wrel);
        return emb_fail(err, EMB_ERR_IO, "%s: missing (Dense weights)", wrel);
    }
    st_file *st = NULL;
    s = st_open(wpath, wrel, &st, err);
    free(wpath);
    if (s) return s;
    if ((s = priv_add_file(p, st, err))) return s;
    const st_tensor *t = st_find(st, "linear.weight");
    if (!t) return emb_fail(err, EMB_ERR_FORMAT, "%s: missing tensor \"linear.weight\"", wrel);
    if ((s = check_tensor(t, wrel, "linear.weight", 2, d->out_features, d->in_features, &d->w, err))) return s;
    if (d->has_bias) {
        t = st_find(st, "linear.bias");
        if (!t) return emb_fail(err, EMB_ERR_FORMAT, "%s: missing tensor \"linear.bias\"", wrel);
        if ((s = check_tensor(t, wrel, "linear.bias", 1, d->out_features, 0, &d->b, err))) return s;
    }
    return EMB_OK;
}

static int popcount(int x) {
    int n = 0;
    for (; x; x &= x - 1) n++;
    return n;
}

/* modules.json: Transformer, Pooling, any Dense, optionally Normalize last. */
static emb_status load_modules(const char *dir, emb_model_files *mf, mf_priv *p, emb_error *err) {
    const char *shown = "modules.json";
    cJSON *j = NULL;
    emb_status s = read_rel_json(dir, shown, &j, err);
    if (s) return s;
    emb_st_config *st = &mf->st;
    int n = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : -1;
    if (n < 0) s = emb_fail(err, EMB_ERR_FORMAT, "%s: expected a JSON list of modules", shown);
    if (!s && n > 0 && !(st->dense = calloc((size_t)n, sizeof *st->dense)))
        s = emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    int i = 0, seen_transformer = 0, seen_pooling = 0, dim = 0;
    for (const cJSON *m = s ? NULL : j->child; m && !s; m = m->next, i++) {
        const char *type = NULL, *path = NULL;
        char where[64];
        snprintf(where, sizeof where, "%s: module %d", shown, i);
        if (!cJSON_IsObject(m)) {
            s = emb_fail(err, EMB_ERR_FORMAT, "%s must be an object", where);
            break;
        }
        if ((s = ju_get_string(m, "type", where, &type, NULL, err))) break;
        if ((s = ju_get_string(m, "path", where, &path, NULL, err))) break;
        if (!type) {
            s = emb_fail(err, EMB_ERR_FORMAT, "%s: missing field \"type\"", where);
            break;
        }
        if (!path) path = "";
        /* Module paths are relative folders inside the model directory. */
        if (path[0] == '/' || strstr(path, "..")) {
            s = emb_fail(err, EMB_ERR_FORMAT, "%s: path \"%.200s\" must stay inside the model directory", where,
                         path);
            break;
        }
        const char *kind = st_module_kind(type);
        if (!kind) kind = "";
        if ((!strcmp(kind, "Pooling") || !strcmp(kind, "Dense")) && (s = check_module_dir(dir, path, where, err)))
            break;
        if (strcmp(kind, "Transformer") == 0) {
            if (i != 0) s = emb_fail(err, EMB_ERR_UNSUPPORTED, "%s: Transformer must be the first module", where);
            seen_transformer = 1;
        } else if (strcmp(kind, "Pooling") == 0) {
            if (!seen_transformer || seen_pooling)
                s = emb_fail(err, EMB_ERR_UNSUPPORTED, "%s: Pooling must follow the Transformer, once", where);
            else if (!(s = load_pooling(dir, path, mf, err)))
                dim = st->pooling_dim * popcount(st->pooling_modes);
            seen_pooling = 1;
        } else if (strcmp(kind, "Dense") == 0) {
            if (!seen_pooling || st->normalize)
                s = emb_fail(err, EMB_ERR_UNSUPPORTED, "%s: Dense must come after Pooling and before Normalize",
                             where);
            else if (!(s = load_dense(dir, path, dim, &st->dense[st->n_dense], p, err)))
                dim = st->dense[st->n_dense++].out_features;
        } else if (strcmp(kind, "Normalize") == 0) {
            if (!seen_pooling || st->normalize)
                s = emb_fail(err, EMB_ERR_UNSUPPORTED, "%s: Normalize must come after Pooling, once", where);
            st->normalize = 1;
        } else {
            s = emb_fail(err, EMB_ERR_UNSUPPORTED, "%s: module type \"%.128s\" is not supported", where, type);
        }
    }
    if (!s && !seen_pooling)
        s = emb_fail(err, EMB_ERR_UNSUPPORTED, "%s: no Transformer + Pooling modules (token embeddings only)",
                     shown);
    cJSON_Delete(j);
    return s;
}

static emb_status load_sbert_config(const char *dir, emb_model_files *mf, emb_error *err) {
    const char *shown = "sentence_bert_config.json";
    char *path = path_join(dir, shown);
    if (!path) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    int exists = is_present(path);
    cJSON *j = NULL;
    emb_status s = exists ? ju_read_file(path, shown, &j, err) : EMB_OK;
    free(path);
    if (s || !exists) return s;
    if (!cJSON_IsObject(j)) s = emb_fail(err, EMB_ERR_FORMAT, "%s: not a JSON object", shown);
    if (!s) s = ju_get_int(j, "max_seq_length", shown, 1, INT_MAX, &mf->st.max_seq_length, NULL, err);
    if (!s) s = ju_get_bool(j, "do_lower_case", shown, &mf->st.do_lower_case, NULL, err);
    if (!s && mf->st.max_seq_length > mf->r.max_position)
        s = emb_fail(err, EMB_ERR_FORMAT,
                     "%s: max_seq_length %d exceeds the %d positions config.json gives the model", shown,
                     mf->st.max_seq_length, mf->r.max_position);
    cJSON_Delete(j);
    return s;
}

static emb_status load_st_extra_config(const char *dir, emb_model_files *mf, emb_error *err) {
    const char *shown = "config_sentence_transformers.json";
    emb_st_config *st = &mf->st;
    char *path = path_join(dir, shown);
    if (!path) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    int exists = is_present(path);
    cJSON *j = NULL;
    emb_status s = exists ? ju_read_file(path, shown, &j, err) : EMB_OK;
    free(path);
    if (s) return s;
    if (j && !cJSON_IsObject(j)) s = emb_fail(err, EMB_ERR_FORMAT, "%s: not a JSON object", shown);

    const cJSON *pr = (j && !s) ? cJSON_GetObjectItemCaseSensitive(j, "prompts") : NULL;
    if (pr && !cJSON_IsNull(pr)) {
        int oom = 0;
        const char *dup = cJSON_IsObject(pr) ? ju_duplicate_key(pr, &oom) : NULL;
        int n = cJSON_GetArraySize(pr);
        if (!cJSON_IsObject(pr))
            s = emb_fail(err, EMB_ERR_FORMAT, "%s: field \"prompts\" must be an object of strings", shown);
        else if (oom || (n > 0 && !(st->prompts = calloc((size_t)n, sizeof *st->prompts))))
            s = emb_fail(err, EMB_ERR_NOMEM, "out of memory");
        else if (dup)
            s = emb_fail(err, EMB_ERR_FORMAT, "%s: field \"prompts\": duplicate prompt name \"%s\"", shown, dup);
        for (const cJSON *c = s ? NULL : pr->child; c && !s; c = c->next) {
            if (!cJSON_IsString(c)) {
                s = emb_fail(err, EMB_ERR_FORMAT, "%s: prompt \"%s\" must be a string", shown, c->string);
                break;
            }
            emb_prompt *e = &st->prompts[st->n_prompts++];
            e->name = strdup(c->string);
            e->text = strdup(c->valuestring);
            if (!e->name || !e->text) s = emb_fail(err, EMB_ERR_NOMEM, "out of memory");
        }
    }

    const char *dp = NULL;
    if (j && !s) s = ju_get_string(j, "default_prompt_name", shown, &dp, NULL, err);
    if (!s && dp) {
        int found = 0;
        for (int i = 0; i < st->n_prompts; i++) found |= strcmp(st->prompts[i].name, dp) == 0;
        if (!found)
            s = emb_fail(err, EMB_ERR_FORMAT, "%s: default_prompt_name \"%.128s\" is not one of the prompts",
                         shown, dp);
        else if (!(st->default_prompt_name = strdup(dp)))
            s = emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    }

    const char *sim = NULL;
    if (j && !s) s = ju_get_string(j, "similarity_fn_name", shown, &sim, NULL, err);
    if (!s && sim) {
        static const char *known[] = {"cosine", "dot", "dot_product", "euclidean", "manhattan"};
        int ok = 0;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) ok |= strcmp(sim, known[i]) == 0;
        if (!ok)
            s = emb_fail(err, EMB_ERR_UNSUPPORTED,
                         "%s: similarity_fn_name \"%.64s\" is not supported (cosine, dot, euclidean, manhattan)",
                         shown, sim);
        else if (strcmp(sim, "dot_product") == 0)
            sim = "dot";   /* sentence-transformers' alias */
    }
    if (!s && !(st->similarity_fn = strdup(sim ? sim : "cosine")))
        s = emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    cJSON_Delete(j);
    return s;
}

/* sentence-transformers' default pooling for a checkpoint without
 * modules.json: last token when config.json's architectures[0] ends in
 * "ForCausalLM" (a decoder trained as a language model) unless is_causal is
 * false, else mean. */
static emb_status default_pooling(const cJSON *cfg, int *modes, emb_error *err) {
    *modes = EMB_POOL_MEAN;
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(cfg, "architectures");
    const cJSON *first = cJSON_IsArray(arch) ? cJSON_GetArrayItem(arch, 0) : NULL;
    if (!cJSON_IsString(first)) return EMB_OK;
    const char *a = first->valuestring, *suffix = "ForCausalLM";
    size_t n = strlen(a), k = strlen(suffix);
    int causal = 1;
    emb_status s = ju_get_bool(cfg, "is_causal", "config.json", &causal, NULL, err);
    if (!s && n >= k && strcmp(a + n - k, suffix) == 0 && causal) *modes = EMB_POOL_LAST_TOKEN;
    return s;
}

static emb_status load_sentence_transformers(const char *dir, const cJSON *cfg, emb_model_files *mf, mf_priv *p,
                                             emb_error *err) {
    emb_st_config *st = &mf->st;
    /* Defaults when there is no modules.json: what sentence-transformers
     * builds around a plain transformers checkpoint. */
    emb_status s = default_pooling(cfg, &st->pooling_modes, err);
    if (s) return s;
    st->include_prompt = 1;
    st->pooling_dim = mf->r.hidden;
    char *mod = path_join(dir, "modules.json");
    if (!mod) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    int has_modules = is_present(mod);
    free(mod);
    if (has_modules && (s = load_modules(dir, mf, p, err))) return s;
    if ((s = load_sbert_config(dir, mf, err))) return s;
    return load_st_extra_config(dir, mf, err);
}

/* ------------------------------------------------------------ public */

emb_status emb_mf_load(const char *dir, emb_model_files *mf, emb_error *err) {
    memset(mf, 0, sizeof *mf);
    if (!dir) return emb_fail(err, EMB_ERR_INVALID_ARG, "NULL model directory");
    mf->dir = strdup(dir);
    mf_priv *p = calloc(1, sizeof *p);
    mf->priv = p;
    if (!mf->dir || !p) {
        emb_mf_free(mf);
        return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    }
    cJSON *cfg = NULL;
    emb_status s = read_rel_json(dir, "config.json", &cfg, err);
    if (!s) s = open_weights(dir, p, err);
    if (!s) s = emb_arch_build(cfg, p, &mf->r, err);
    if (!s) s = load_sentence_transformers(dir, cfg, mf, p, err);
    cJSON_Delete(cfg);
    if (s) {
        if (err && s != EMB_ERR_NOMEM) emb_fail_prefix(err, "model %s", dir);
        emb_mf_free(mf);
    }
    return s;
}

void emb_mf_free(emb_model_files *mf) {
    if (!mf) return;
    mf_priv *p = mf->priv;
    if (p) {
        for (size_t i = 0; i < p->n_files; i++) st_close(p->files[i].st);
        free(p->files);
        for (size_t i = 0; i < p->n_index; i++) free(p->index[i].name);
        free(p->index);
        free(p);
    }
    emb_recipe_free(&mf->r);
    free(mf->st.dense);
    for (int i = 0; i < mf->st.n_prompts; i++) {
        free(mf->st.prompts[i].name);
        free(mf->st.prompts[i].text);
    }
    free(mf->st.prompts);
    free(mf->st.default_prompt_name);
    free(mf->st.similarity_fn);
    free(mf->dir);
    memset(mf, 0, sizeof *mf);
}

/* ------------------------------------------------------ conversions */

size_t emb_tensor_numel(const emb_tensor *t) {
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    return n;
}

/* IEEE half -> float, exact for every input: subnormals are renormalized,
 * inf and NaN (payload kept) map to their float counterparts. */
static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F;
    uint32_t mant = h & 0x3FF;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {
            /* Subnormal: shift the leading 1 into the implicit position. */
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while (!(mant & 0x400));
            bits = sign | (uint32_t)(127 - 15 - e) << 23 | (mant & 0x3FF) << 13;
        }
    } else if (exp == 0x1F) {
        bits = sign | 0x7F800000u | mant << 13;
    } else {
        bits = sign | (exp + 127 - 15) << 23 | mant << 13;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

void emb_tensor_to_f32(const emb_tensor *t, float *dst, size_t n) {
    /* memcpy per element: the data may be unaligned inside the mmapped file
     * (the header length need not be a multiple of 4). */
    const unsigned char *src = t->data;
    switch (t->dtype) {
    case EMB_DTYPE_F32:
        memcpy(dst, src, n * sizeof(float));
        break;
    case EMB_DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = half_to_float(h);
        }
        break;
    case EMB_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&dst[i], &bits, sizeof bits);
        }
        break;
    default:
        for (size_t i = 0; i < n; i++) dst[i] = NAN;
        break;
    }
}
