/*
 * The embedc command line: encode (bulk embedding of a file or stdin),
 * tokenize, info, similarity and bench. A thin layer over the library and
 * the engine: parsing flags, progress on a terminal, a summary at the end.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_extra.h"
#include "embedc.h"
#include "engine.h"
#include "error.h"
#include "io.h"
#include "cli_words.h"
#include "tfidf.h"
#include "cli.h"

#define DEFAULT_MODEL "models/all-MiniLM-L6-v2"

double cli_now_s(void) { return eng_now_s(); }

static void usage(FILE *f) {
    fprintf(f,
        "usage: embedc <command> [options]\n"
        "\n"
        "commands:\n"
        "  encode      embed documents (one per line, or a JSONL field) into .npy/.fvecs/JSONL\n"
        "  tokenize    write each document's token ids as JSONL\n"
        "  info        describe a model: embedc info [MODEL]\n"
        "  similarity  embed the texts given as arguments and print their cosine similarities\n"
        "  bench       measure throughput on a corpus\n"
        "  similar-words  nearest words of a word-vector model: --model FILE [-k 10] WORD\n"
        "  analogy     words nearest to A - B + C: --model FILE [-k 10] A B C\n"
        "  fit-tfidf   learn a TF-IDF / bag-of-words model: --input FILE --output DIR (see fit-tfidf --help);\n"
        "              encode --model DIR then writes sparse rows (.npz scipy CSR, or JSONL)\n"
        CLI_EXTRA_USAGE
        "\n"
        "common options:\n"
        "  -m, --model DIR|ORG/NAME   model directory or Hugging Face cache repo id\n"
        "                             (default: $EMBEDC_MODEL, else " DEFAULT_MODEL ")\n"
        "  -i, --input FILE           input, '-' for stdin (default '-')\n"
        "      --input-format text|jsonl   (default: from the file name; text = one document per line)\n"
        "      --field NAME           JSONL key holding the text (default \"text\")\n"
        "  -o, --output FILE          output, '-' for stdout (default '-', JSONL)\n"
        "  -f, --format npy|npy16|fvecs|jsonl   (default: from the output name, else npy)\n"
        "      --batch-tokens N       token budget of one packed batch (default 16384 on the CPU, 65536 on a GPU)\n"
        "      --max-length N         truncate documents to N tokens (default: the model's)\n"
        "      --prompt TEXT          prepend TEXT to every document\n"
        "      --prompt-name NAME     prepend the model's prompt NAME (config_sentence_transformers.json)\n"
        "      --normalize / --no-normalize   L2-normalize output (default: as the model says)\n"
        "      --truncate-dim N       keep the first N dimensions (Matryoshka), renormalized when normalizing\n"
        "      --pooling MODES        comma list of cls,mean,max,mean_sqrt_len_tokens,weightedmean,lasttoken\n"
        "                             (static models: mean, max, sum)\n"
        "      --lowercase / --no-lowercase   word vectors: lowercase words before lookup (default:\n"
        "                             when the vocabulary has no uppercase letter)\n"
        "      --layer K              use the output of encoder layer K (negative counts from the end)\n"
        "      --device auto|cuda|cpu (default auto)\n"
        "      --dtype auto|f16|bf16  GPU precision (default: from the model)\n"
        "      --devices all|N|LIST   GPUs to use, data-parallel: every visible one (default), the first N,\n"
        "                             or ids like 0,2,3\n"
        "      --tensor-parallel N    split the model over groups of N GPUs (heads and MLP columns, NCCL\n"
        "                             all-reduce); the --devices form devices/N data-parallel groups\n"
        "      --threads N            CPU threads (default: OMP_NUM_THREADS, else all cores)\n"
        "      --tokens               tokenize: also write the token strings\n"
        "      --fixed-lengths LIST   bench: fixed-length workloads after the corpus (default 32,128,512; none)\n"
        "      --corpus-copies N      bench: also the corpus N times over, the steady state (default 8 on a GPU, 1: not)\n"
        "      --summary-json FILE    write the run's summary as JSON\n"
        "      --job DIR              encode: a resumable job kept in DIR (run the same command again after a\n"
        "                             crash or a signal to continue); under mpirun/srun each rank takes a share\n"
        "      --window-docs N        documents sorted and batched together, and one job chunk (default 4096)\n"
        "      --max-doc-bytes N      documents longer than N bytes are cut to N (default 1048576; 0 = no limit)\n"
        "      --long-docs cut|error  what a document over --max-doc-bytes gets (default cut)\n"
        "      --tokenizer FILE       tokenize: use this tokenizer.json (no model needed)\n"
        "  -q, --quiet                no progress bar or summary\n"
        CLI_EXTRA_OPTIONS_USAGE);
}

static int parse_pooling(const char *s, int *out) {
    static const struct { const char *name; int bit; } names[] = {
        {"cls", EMB_POOL_CLS}, {"max", EMB_POOL_MAX}, {"mean", EMB_POOL_MEAN},
        {"mean_sqrt_len_tokens", EMB_POOL_MEAN_SQRT_LEN}, {"mean_sqrt_len", EMB_POOL_MEAN_SQRT_LEN},
        {"weightedmean", EMB_POOL_WEIGHTED_MEAN}, {"lasttoken", EMB_POOL_LAST_TOKEN}, {"sum", EMB_POOL_SUM}};
    int bits = 0;
    char *copy = strdup(s), *save = NULL;
    if (!copy) { fprintf(stderr, "embedc: out of memory\n"); return -1; }
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int found = 0;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (!strcmp(tok, names[i].name)) { bits |= names[i].bit; found = 1; }
        if (!found) { fprintf(stderr, "embedc: unknown pooling mode \"%s\"\n", tok); free(copy); return -1; }
    }
    free(copy);
    if (!bits) {
        fprintf(stderr, "embedc: --pooling \"%s\": expected a comma list of cls, mean, max, "
                        "mean_sqrt_len_tokens, weightedmean, lasttoken\n", s);
        return -1;
    }
    *out = bits;
    return 0;
}

int cli_parse_int(const char *flag, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "embedc: %s expects an integer in %ld..%ld, got \"%s\"\n", flag, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* --layer counts encoder layers from 1, or from the end with -1, -2, ...;
 * 0 names no layer (the library's 0 means "the default", the last). */
static int parse_layer(const char *s, int *out) {
    long v;
    if (cli_parse_int("--layer", s, -1000, 1000, &v)) return -1;
    if (v == 0) {
        fprintf(stderr, "embedc: --layer 0: layers are numbered from 1 (the first encoder layer), "
                        "or from the end with -1 (the last), -2, ...\n");
        return -1;
    }
    *out = (int)v;
    return 0;
}

enum { O_INFMT = 256, O_FIELD, O_BATCH, O_MAXLEN, O_PROMPT, O_PROMPT_NAME, O_NORM, O_NONORM,
       O_TRUNC, O_POOL, O_LAYER, O_DEVICE, O_DTYPE, O_THREADS, O_TOKENS, O_SUMMARY, O_FIXED, O_JOB, O_WINDOW, O_DEVICES,
       O_MAXDOC, O_LONGDOCS, O_TOKENIZER, O_LOWER, O_NOLOWER, O_TP, O_COPIES };

static int parse_opts(int argc, char **argv, cli_opts *o) {
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'}, {"input", required_argument, 0, 'i'},
        {"output", required_argument, 0, 'o'}, {"format", required_argument, 0, 'f'},
        {"input-format", required_argument, 0, O_INFMT}, {"field", required_argument, 0, O_FIELD},
        {"batch-tokens", required_argument, 0, O_BATCH}, {"max-length", required_argument, 0, O_MAXLEN},
        {"prompt", required_argument, 0, O_PROMPT}, {"prompt-name", required_argument, 0, O_PROMPT_NAME},
        {"normalize", no_argument, 0, O_NORM}, {"no-normalize", no_argument, 0, O_NONORM},
        {"truncate-dim", required_argument, 0, O_TRUNC}, {"pooling", required_argument, 0, O_POOL},
        {"layer", required_argument, 0, O_LAYER}, {"device", required_argument, 0, O_DEVICE},
        {"dtype", required_argument, 0, O_DTYPE}, {"threads", required_argument, 0, O_THREADS},
        {"tokens", no_argument, 0, O_TOKENS}, {"fixed-lengths", required_argument, 0, O_FIXED},
        {"corpus-copies", required_argument, 0, O_COPIES}, {"summary-json", required_argument, 0, O_SUMMARY},
        {"job", required_argument, 0, O_JOB}, {"devices", required_argument, 0, O_DEVICES}, {"window-docs", required_argument, 0, O_WINDOW},
        {"max-doc-bytes", required_argument, 0, O_MAXDOC}, {"long-docs", required_argument, 0, O_LONGDOCS},
        {"tokenizer", required_argument, 0, O_TOKENIZER}, {"tensor-parallel", required_argument, 0, O_TP},
        {"lowercase", no_argument, 0, O_LOWER}, {"no-lowercase", no_argument, 0, O_NOLOWER},
        {"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'}, CLI_EXTRA_LONGOPTS, {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->eo = emb_encode_default_options();
    o->model = getenv("EMBEDC_MODEL") && *getenv("EMBEDC_MODEL") ? getenv("EMBEDC_MODEL") : DEFAULT_MODEL;
    o->input = "-";
    o->output = "-";
    o->field = "text";
    int c;
    long v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:i:o:f:k:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'i': o->input = optarg; break;
        case 'o': o->output = optarg; o->x.output_given = 1; break;
        case 'f': o->format = optarg; break;
        case 'q': o->quiet = 1; break;
        case 'h': o->help = 1; return 0;
        case O_INFMT: o->input_format = optarg; break;
        case O_FIELD: o->field = optarg; break;
        case O_BATCH: if (cli_parse_int("--batch-tokens", optarg, 1, 1L << 30, &v)) return -1; o->batch_tokens = (size_t)v; break;
        case O_MAXLEN: if (cli_parse_int("--max-length", optarg, 2, 1 << 20, &v)) return -1; o->max_length = (int)v; break;
        case O_PROMPT: o->eo.prompt = optarg; break;
        case O_PROMPT_NAME: o->eo.prompt_name = optarg; break;
        case O_NORM: o->eo.normalize = 1; break;
        case O_NONORM: o->eo.normalize = 0; break;
        case O_TRUNC: if (cli_parse_int("--truncate-dim", optarg, 1, 1 << 20, &v)) return -1; o->eo.truncate_dim = (int)v; break;
        case O_POOL: if (parse_pooling(optarg, &o->eo.pooling)) return -1; break;
        case O_LAYER: if (parse_layer(optarg, &o->eo.layer)) return -1; break;
        case O_DEVICE: o->device = optarg; break;
        case O_DTYPE: o->dtype = optarg; break;
        case O_THREADS: if (cli_parse_int("--threads", optarg, 0, 4096, &v)) return -1; o->threads = (int)v; break;
        case O_TOKENS: o->tokens = 1; break;
        case O_SUMMARY: o->summary_json = optarg; break;
        case O_FIXED: o->fixed_lengths = optarg; break;
        case O_COPIES: if (cli_parse_int("--corpus-copies", optarg, 1, 1000, &v)) return -1; o->corpus_copies = (int)v; break;
        case O_JOB: o->job = optarg; break;
        case O_DEVICES: o->devices = optarg; break;
        case O_TP:
            if (cli_parse_int("--tensor-parallel", optarg, 1, EMB_MAX_DEVICES, &v)) return -1;
            o->tensor_parallel = (int)v;
            break;
        case O_WINDOW: if (cli_parse_int("--window-docs", optarg, 1, 1 << 24, &v)) return -1; o->window_docs = (size_t)v; break;
        case O_MAXDOC:
            if (cli_parse_int("--max-doc-bytes", optarg, 0, 1L << 40, &v)) return -1;
            o->eo.max_doc_bytes = v ? (size_t)v : SIZE_MAX;
            break;
        case O_LONGDOCS:
            if (!strcmp(optarg, "cut")) o->eo.long_docs = EMB_LONG_DOCS_CUT;
            else if (!strcmp(optarg, "error")) o->eo.long_docs = EMB_LONG_DOCS_ERROR;
            else { fprintf(stderr, "embedc: --long-docs %s: expected cut or error\n", optarg); return -1; }
            break;
        case O_TOKENIZER: o->tokenizer = optarg; break;
        case O_LOWER: o->lowercase = 1; break;
        case O_NOLOWER: o->lowercase = -1; break;
        default: {
            int h = cli_extra_opt(c, optarg, &o->x);
            if (h == 1) break;
            if (h == 0) usage(stderr);
            return -1;
        }
        }
    }
    return 0;
}

emb_model *cli_load_model(const cli_opts *o, emb_error *err) {
    emb_model_options mo = emb_model_default_options();
    mo.threads = o->threads;
    mo.max_length = o->max_length;
    mo.batch_tokens = o->batch_tokens;
    mo.verbose = !o->quiet;
    mo.devices = o->devices;
    mo.tensor_parallel = o->tensor_parallel;
    mo.lowercase = o->lowercase;
    if (o->device) {
        if (!strcmp(o->device, "cpu")) mo.device = EMB_DEVICE_CPU;
        else if (!strcmp(o->device, "cuda") || !strcmp(o->device, "gpu")) mo.device = EMB_DEVICE_CUDA;
        else if (!strcmp(o->device, "auto")) mo.device = EMB_DEVICE_AUTO;
        else { emb_fail(err, EMB_ERR_INVALID_ARG, "--device %s: expected auto, cuda or cpu", o->device); return NULL; }
    }
    if (o->dtype) {
        if (!strcmp(o->dtype, "f16") || !strcmp(o->dtype, "fp16") || !strcmp(o->dtype, "float16")) mo.dtype = EMB_DTYPE_F16;
        else if (!strcmp(o->dtype, "bf16") || !strcmp(o->dtype, "bfloat16")) mo.dtype = EMB_DTYPE_BF16;
        else if (!strcmp(o->dtype, "f32") || !strcmp(o->dtype, "float32")) mo.dtype = EMB_DTYPE_F32;
        else if (!strcmp(o->dtype, "fp8") || !strcmp(o->dtype, "e4m3")) {
            /* Measured, not guessed: tools/fp8-fidelity, bench/RESULTS.md. */
            emb_fail(err, EMB_ERR_UNSUPPORTED, "--dtype %s: not offered: FP8 (e4m3) GEMMs miss the fidelity gate "
                     "(cos >= 0.999 against fp32) on all-MiniLM-L6-v2, all-mpnet-base-v2 and EmbeddingGemma "
                     "(tools/fp8-fidelity); use f16 or bf16", o->dtype);
            return NULL;
        }
        else if (strcmp(o->dtype, "auto")) { emb_fail(err, EMB_ERR_INVALID_ARG, "--dtype %s: expected auto, f16, bf16 or f32", o->dtype); return NULL; }
    }
    emb_model *m = NULL;
    if (emb_model_load(o->model, &mo, &m, err) != EMB_OK) return NULL;
    if (o->max_length > m->max_length)
        fprintf(stderr, "embedc: --max-length %d is above the model's limit: using %d tokens\n",
                o->max_length, m->max_length);
    return m;
}

/* The output width for these options, checked exactly as encode checks them
 * (the same messages for a bad --layer or --truncate-dim). */
static int checked_dim(const emb_model *m, const emb_encode_options *eo, emb_error *err) {
    emb_job job;
    return eng_make_job(m, eo, &job, err) == EMB_OK ? job.out_dim : -1;
}

/* ---- progress --------------------------------------------------------- */

static void fmt_hms(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 1e7) { snprintf(buf, n, "--:--"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else snprintf(buf, n, "%02ld:%02ld", t / 60, t % 60);
}

void cli_on_progress(void *ud, uint64_t docs, uint64_t tokens) {
    cli_progress *p = ud;
    double t = cli_now_s();
    if (!p->enabled || t - p->last < 0.2) return;
    p->last = t;
    double el = t - p->t0;
    uint64_t used = 0, size = 0;
    if (p->reader) io_reader_progress(p->reader, &used, &size);
    /* The reader runs up to a window ahead of the encoder: estimate the share
     * of the input that is done from the bytes read per document so far. */
    double frac = -1;
    if (size > 0 && used > 0) {
        frac = (double)used / (double)size;
        frac = frac > 1 ? 1 : frac;
    }
    char eta[32] = "--:--";
    int width = 24, filled = 0;
    if (frac > 0 && docs > 0) {
        double est_total = (double)docs / frac;   /* upper bound on docs read */
        (void)est_total;
        filled = (int)(frac * width);
        fmt_hms(el / frac - el, eta, sizeof eta);
    }
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r[%s] %llu docs  %.0f tok/s  %.0f docs/s  ETA %s   ", bar, (unsigned long long)docs,
            el > 0 ? tokens / el : 0.0, el > 0 ? docs / el : 0.0, eta);
    fflush(stderr);
}

static int write_summary_json(const char *path, const emb_encode_stats *s, double secs, const emb_model *m,
                              int dim) {
    emb_error err = {0};
    io_out *out = NULL;
    if (io_out_open(path, 0, &out, &err) == EMB_OK) {
        fprintf(io_out_stream(out),
                "{\"documents\": %llu, \"tokens\": %llu, \"truncated\": %llu, \"invalid_utf8\": %llu, "
                "\"cut\": %llu, \"empty\": %llu, "
                "\"seconds\": %.6f, \"tokens_per_second\": %.1f, \"documents_per_second\": %.1f, "
                "\"dim\": %d, \"backend\": \"%s\", \"oov\": %llu, \"devices\": %d, \"device_tokens\": [",
                (unsigned long long)s->documents, (unsigned long long)s->tokens, (unsigned long long)s->truncated,
                (unsigned long long)s->invalid_utf8, (unsigned long long)s->cut, (unsigned long long)s->empty, secs, secs > 0 ? s->tokens / secs : 0.0,
                secs > 0 ? s->documents / secs : 0.0, dim, m->be->name,
                (unsigned long long)s->oov, s->devices);
        for (int k = 0; k < s->devices && k < EMB_MAX_DEVICES; k++)
            fprintf(io_out_stream(out), "%s%llu", k ? ", " : "", (unsigned long long)s->device_tokens[k]);
        fprintf(io_out_stream(out), "]}\n");
        io_out_commit(out, &err);
    }
    io_out_close(out);
    if (err.code == EMB_OK) return 0;
    fprintf(stderr, "embedc: error: --summary-json: %s\n", err.message);
    return -1;
}

/* ---- commands ---------------------------------------------------------- */

int cli_open_input(const cli_opts *o, io_reader **r, emb_error *err) {
    io_in_format inf = io_guess_in_format(o->input);
    if (o->input_format) {
        if (!strcmp(o->input_format, "jsonl")) inf = IO_IN_JSONL;
        else if (!strcmp(o->input_format, "text") || !strcmp(o->input_format, "txt")) inf = IO_IN_TEXT;
        else { emb_fail(err, EMB_ERR_INVALID_ARG, "--input-format %s: expected text or jsonl", o->input_format); return -1; }
    }
    if (io_reader_open(o->input, inf, o->field, r, err) != EMB_OK) return -1;
    size_t max_doc = eng_max_doc_bytes(&o->eo);
    if (max_doc != SIZE_MAX) io_reader_set_keep(*r, max_doc + 1);   /* +1: the engine sees it is over */
    return 0;
}

static void print_run_notes(const emb_model *m, FILE *out, const char *lead, const char *tag, FILE *js);

static int cmd_encode(const cli_opts *o) {
    if (emb_tfidf_detect(o->model))
        return cli_encode_tfidf(o->model, o->input, o->input_format, o->field, o->output, o->format, o->quiet);
    if (o->job) return cli_encode_job(o);
    emb_error err = {0};
    io_out_format fmt;
    if (io_parse_out_format(o->format, o->output, &fmt)) {
        fprintf(stderr, "embedc: --format %s: expected npy, npy16, fvecs or jsonl\n", o->format);
        return 2;
    }
    io_reader *r = NULL;
    io_writer *w = NULL;
    emb_model *m = NULL;
    cli_index_job *ij = NULL;
    int rc = 1;
    if (cli_open_input(o, &r, &err)) goto fail;
    if (io_check_not_input(o->input, o->output, &err) != EMB_OK) goto fail;
    m = cli_load_model(o, &err);
    if (!m) goto fail;
    int dim = emb_model_dim(m, &o->eo);
    emb_job job;
    if (eng_make_job(m, &o->eo, &job, &err) != EMB_OK) goto fail;
    /* --index without -o: the index is the only output */
    if ((!o->x.index_out || o->x.output_given) && io_writer_open(o->output, fmt, dim, &w, &err) != EMB_OK) goto fail;
    if (o->x.index_out) {
        if (cli_index_job_open(&o->x, m, &o->eo, dim, o->quiet, &ij, &err) != EMB_OK) goto fail;
        cli_index_job_set(ij, r, w);
    }

    cli_progress ps = {cli_now_s(), 0, r, !o->quiet && isatty(2)};
    eng_run_options ro = {o->batch_tokens, o->window_docs, cli_on_progress, &ps, NULL, 0,
                          ij ? cli_index_doc_label : NULL, ij};
    emb_encode_stats stats;
    double t0 = cli_now_s();
    if (eng_run(m, &o->eo, &ro, ij ? cli_index_read : io_reader_next, ij ? (void *)ij : r,
                ij ? cli_index_write : io_writer_write, ij ? (void *)ij : w, &stats, &err) != EMB_OK) goto fail;
    if (ij && cli_index_job_finish(ij, &err) != EMB_OK) goto fail;
    if (w && io_writer_commit(w, &err) != EMB_OK) goto fail;
    double secs = cli_now_s() - t0;
    if (ps.enabled) fprintf(stderr, "\r%*s\r", 90, "");
    if (!o->quiet)
        fprintf(stderr, "embedc: %llu documents, %llu tokens in %.2f s: %.0f tokens/s, %.1f docs/s "
                        "(%llu truncated, %llu with invalid UTF-8 replaced, %llu cut to --max-doc-bytes, "
                        "%llu empty) [%s, dim %d]\n",
                (unsigned long long)stats.documents, (unsigned long long)stats.tokens, secs,
                secs > 0 ? stats.tokens / secs : 0.0, secs > 0 ? stats.documents / secs : 0.0,
                (unsigned long long)stats.truncated, (unsigned long long)stats.invalid_utf8,
                (unsigned long long)stats.cut, (unsigned long long)stats.empty, m->be->name, dim);
    if (!o->quiet && m->sv && m->sv->format != SV_ST_STATIC)
        fprintf(stderr, "embedc: %llu %s out of vocabulary (dropped)\n", (unsigned long long)stats.oov,
                emb_sv_is_word_format(m->sv) ? "words" : "unknown tokens");
    if (!o->quiet) print_run_notes(m, stderr, "embedc: ", "", NULL);
    if (o->summary_json && write_summary_json(o->summary_json, &stats, secs, m, dim)) goto done;
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "\nembedc: error: %s\n", err.message);
done:
    cli_index_job_close(ij);
    io_writer_close(w);
    io_reader_close(r);
    emb_model_free(m);
    return rc;
}

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* Static models: the ids (rows of a word table, or token ids) the pipeline pools. */
static int tokenize_static(emb_model *m, FILE *out, uint64_t idx, const char *text, size_t len,
                           tok_encoding *enc, int strings, emb_error *err) {
    int32_t *ids = malloc((size_t)m->max_length * sizeof *ids);
    size_t n = 0;
    uint64_t oov = 0;
    int inv, tr;
    if (!ids) { emb_fail(err, EMB_ERR_NOMEM, "out of memory"); return -1; }
    if (eng_static_tokenize(m, text, len, enc, ids, NULL, (size_t)m->max_length, &n, &oov, &inv, &tr, err) != EMB_OK) {
        emb_fail_prefix(err, "document %llu", (unsigned long long)idx);
        free(ids);
        return -1;
    }
    fprintf(out, "{\"index\": %llu, \"ids\": [", (unsigned long long)idx);
    for (size_t k = 0; k < n; k++) fprintf(out, "%s%d", k ? ", " : "", ids[k]);
    fprintf(out, "]");
    if (strings) {
        fprintf(out, ", \"tokens\": [");
        for (size_t k = 0; k < n; k++) {
            if (k) fprintf(out, ", ");
            const char *t;
            if (!emb_sv_is_word_format(m->sv)) t = tok_id_to_token(m->tok, ids[k]);
            else if ((size_t)ids[k] < m->sv->n_words) t = emb_sv_word(m->sv, (size_t)ids[k]);
            else t = "<n-gram>";   /* a row of an unknown word's fastText character n-grams */
            json_string(out, t ? t : "");
        }
        fprintf(out, "]");
    }
    fprintf(out, ", \"oov\": %llu%s}\n", (unsigned long long)oov, tr ? ", \"truncated\": true" : "");
    free(ids);
    return 0;
}

static int cmd_tokenize(const cli_opts *o) {
    emb_error err = {0};
    io_reader *r = NULL;
    emb_model *m = NULL;
    io_out *dest = NULL;
    FILE *out = NULL;
    int rc = 1;
    tok_encoding enc;
    tok_encoding_init(&enc);
    eng_prompt p = {0};
    if (cli_open_input(o, &r, &err)) goto fail;
    if (io_check_not_input(o->input, o->output, &err) != EMB_OK) goto fail;
    if (eng_load_tokenizer_model(o->tokenizer, o->model, o->max_length, &m, &err) != EMB_OK) goto fail;
    if (!m) {
        cli_opts co = *o;
        co.device = "cpu";
        m = cli_load_model(&co, &err);
        if (!m) goto fail;
    }
    if (eng_resolve_prompt(m, &o->eo, &p, &err) != EMB_OK) goto fail;
    size_t max_doc = eng_max_doc_bytes(&o->eo);
    if (io_out_open(o->output, 0, &dest, &err) != EMB_OK) goto fail;
    out = io_out_stream(dest);
    const char *text;
    size_t len;
    int got;
    uint64_t idx = 0;
    while ((got = io_reader_next(r, &text, &len, &err)) == 1) {
        int inv, tr;
        if (m->sv) {
            if (tokenize_static(m, out, idx++, text, len, &enc, o->tokens, &err)) goto fail;
            continue;
        }
        if (eng_doc_limit(m, max_doc, o->eo.long_docs == EMB_LONG_DOCS_ERROR, text, &len, idx, &err) < 0) goto fail;
        if (eng_tokenize(m, &p, text, len, &enc, &inv, &tr, &err) != EMB_OK) {
            emb_fail_prefix(&err, "document %llu", (unsigned long long)idx);
            goto fail;
        }
        fprintf(out, "{\"index\": %llu, \"ids\": [", (unsigned long long)idx);
        for (size_t k = 0; k < enc.len; k++) fprintf(out, "%s%d", k ? ", " : "", enc.ids[k]);
        fprintf(out, "]");
        if (o->tokens) {
            fprintf(out, ", \"tokens\": [");
            for (size_t k = 0; k < enc.len; k++) {
                if (k) fprintf(out, ", ");
                const char *t = tok_id_to_token(m->tok, enc.ids[k]);
                json_string(out, t ? t : "");
            }
            fprintf(out, "]");
        }
        if (tr) fprintf(out, ", \"truncated\": true");
        fprintf(out, "}\n");
        idx++;
    }
    if (got < 0 || io_out_commit(dest, &err) != EMB_OK) goto fail;
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "embedc: error: %s\n", err.message);
done:
    io_out_close(dest);
    tok_encoding_free(&enc);
    eng_prompt_free(&p);
    io_reader_close(r);
    emb_model_free(m);
    return rc;
}

static int cmd_info(const cli_opts *o, int argc, char **argv) {
    cli_opts co = *o;
    co.device = co.device ? co.device : "cpu";
    if (optind < argc) co.model = argv[optind];
    if (emb_tfidf_detect(co.model)) return cli_info_tfidf(co.model);
    emb_error err = {0};
    emb_model *m = cli_load_model(&co, &err);
    if (!m) { fprintf(stderr, "embedc: error: %s\n", err.message); return 1; }
    char *d = emb_model_describe(m);
    fputs(d ? d : "", stdout);
    free(d);
    emb_model_free(m);
    return 0;
}

static int cmd_similarity(const cli_opts *o, int argc, char **argv) {
    int n = argc - optind;
    if (n < 1) { fprintf(stderr, "embedc similarity: give the texts to compare as arguments\n"); return 2; }
    emb_error err = {0};
    emb_model *m = cli_load_model(o, &err);
    if (!m) { fprintf(stderr, "embedc: error: %s\n", err.message); return 1; }
    int dim = checked_dim(m, &o->eo, &err);
    float *v = dim > 0 ? malloc((size_t)n * (size_t)dim * sizeof *v) : NULL;
    float *sim = o->x.heatmap ? malloc((size_t)n * (size_t)n * sizeof *sim) : NULL;
    int rc = 1;
    if (dim < 0) {
        fprintf(stderr, "embedc: error: %s\n", err.message);
        goto done;
    }
    if (!v || emb_encode(m, (const char *const *)argv + optind, NULL, (size_t)n, &o->eo, v, NULL, &err) != EMB_OK) {
        fprintf(stderr, "embedc: error: %s\n", v ? err.message : "out of memory");
        goto done;
    }
    printf("cosine similarity (%s, dim %d)\n\n      ", m->be->name, dim);
    for (int j = 0; j < n; j++) printf(" %6d", j + 1);
    printf("\n");
    for (int i = 0; i < n; i++) {
        printf("%5d ", i + 1);
        for (int j = 0; j < n; j++) {
            double dot = 0, ni = 0, nj = 0;
            for (int k = 0; k < dim; k++) {
                double a = v[(size_t)i * dim + k], b = v[(size_t)j * dim + k];
                dot += a * b; ni += a * a; nj += b * b;
            }
            printf(" %6.3f", ni > 0 && nj > 0 ? dot / sqrt(ni * nj) : 0.0);
            if (sim) sim[(size_t)i * n + j] = (float)(ni > 0 && nj > 0 ? dot / sqrt(ni * nj) : 0.0);
        }
        /* At most 60 characters of the text, cut on a UTF-8 boundary. */
        const char *txt = argv[optind + i];
        int cut = 0, chars = 0;
        while (txt[cut] && chars < 60) {
            cut++;
            while (((unsigned char)txt[cut] & 0xC0) == 0x80) cut++;
            chars++;
        }
        printf("   %.*s\n", cut, txt);
    }
    rc = 0;
    if (o->x.heatmap) {
        rc = sim ? cli_heatmap(&o->x, sim, n, (const char *const *)argv + optind, m->mf.dir) : 1;
        if (!rc && !o->quiet) fprintf(stderr, "embedc: wrote %s\n", o->x.heatmap);
    }
done:
    free(v);
    free(sim);
    emb_model_free(m);
    return rc;
}

static emb_model *load_model_cb(const void *o, emb_error *err) { return cli_load_model(o, err); }

/* What m's workers say of their runs (emb_backend.run_note, e.g. the CUDA
 * backend's graph counts), one line each on out as "<lead><backend> <k><tag>:
 * <note>"; with js, also as `], "run_notes": [...` (closing the array that
 * precedes it; the caller's closing bracket ends this one). */
static void print_run_notes(const emb_model *m, FILE *out, const char *lead, const char *tag, FILE *js) {
    int notes = 0;
    for (int k = 0; k < m->nworkers; k++) {
        char note[256] = "";
        if (m->workers[k]->run_note) m->workers[k]->run_note(m->workers[k], note, sizeof note);
        if (!note[0]) continue;
        fprintf(out, "%s%s %d%s: %s\n", lead, m->workers[k]->name, k, tag, note);
        if (js) {
            fputs(notes ? ", " : "], \"run_notes\": [", js);
            json_string(js, note);
        }
        notes++;
    }
}

/* ---- bench ------------------------------------------------------------ */

typedef struct {
    char name[48];
    char **texts;
    size_t *lens;
    size_t n;
} bench_set;

#define BENCH_CORPUS_COPIES 8

static void bench_set_free(bench_set *b) {
    for (size_t i = 0; i < b->n; i++) free(b->texts[i]);
    free(b->texts);
    free(b->lens);
}

static int bench_push(bench_set *b, const char *t, size_t l, size_t *cap) {
    if (b->n == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        char **nt = realloc(b->texts, *cap * sizeof *nt);
        size_t *nl = nt ? realloc(b->lens, *cap * sizeof *nl) : NULL;
        if (nt) b->texts = nt;
        if (!nt || !nl) return -1;
        b->lens = nl;
    }
    if (!(b->texts[b->n] = malloc(l + 1))) return -1;
    memcpy(b->texts[b->n], t, l);
    b->texts[b->n][l] = 0;
    b->lens[b->n++] = l;
    return 0;
}

/* Documents of exactly `len` tokens for BERT-style tokenizers: len - 2 copies
 * of a word that is one token, between the two special tokens. */
static int bench_fixed(bench_set *b, int len, size_t total_tokens) {
    snprintf(b->name, sizeof b->name, "fixed %d", len);
    size_t n = total_tokens / (size_t)len, cap = 0;
    if (n < 8) n = 8;
    size_t words = len > 2 ? (size_t)len - 2 : 1;
    char *doc = malloc(words * 6 + 1);
    if (!doc) return -1;
    for (size_t i = 0; i < words; i++) memcpy(doc + i * 6, "hello ", 6);
    doc[words * 6 - 1] = 0;
    for (size_t i = 0; i < n; i++)
        if (bench_push(b, doc, words * 6 - 1, &cap)) { free(doc); return -1; }
    free(doc);
    return 0;
}

/* The GPU-idle estimate of one encode call: the share of the calling
 * thread's pipeline time spent outside the backend's encode (waiting for
 * tokens, batching, writing), when no device work is queued. */
static double host_gap(const emb_encode_stats *st) {
    const double all = st->wait_seconds + st->batch_seconds + st->encode_seconds + st->write_seconds;
    return all > 0 ? 1.0 - st->encode_seconds / all : 0.0;
}

/* bench: for each workload (the input corpus as a realistic length mix, then
 * fixed lengths 32/128/512, and on a GPU the corpus mix 8 times over), embeds
 * every document `repeat` times and reports the best pass, so warm-up, disk
 * and page-cache effects stay out.
 * Packed batches compute no padding: the padding ratio (tokens computed /
 * real tokens) is 1 by construction; it is printed so figures line up with
 * padded engines'. */
static int cmd_bench(const cli_opts *o) {
    emb_error err = {0};
    emb_model *m = NULL;
    bench_set sets[9];
    int nsets = 0, rc = 1;
    memset(sets, 0, sizeof sets);
    float *out = NULL;
    io_out *js_out = NULL;
    cli_opts co = *o;
    if (!strcmp(co.input, "-")) co.input = "tests/data/corpus/texts.jsonl";
    io_reader *r = NULL;
    if (cli_open_input(&co, &r, &err)) goto fail;
    snprintf(sets[0].name, sizeof sets[0].name, "corpus mix");
    size_t cap = 0;
    const char *t;
    size_t l;
    int got;
    while ((got = io_reader_next(r, &t, &l, &err)) == 1)
        if (bench_push(&sets[0], t, l, &cap)) { emb_fail(&err, EMB_ERR_NOMEM, "out of memory"); goto fail; }
    if (got < 0) goto fail;
    nsets = 1;
    m = cli_load_model(&co, &err);
    if (!m) goto fail;
    int gpu = m->be->peak_flops > 0 || strcmp(m->be->name, "cpu") != 0;
    size_t fixed_tokens = gpu ? (size_t)1 << 22 : (size_t)1 << 15;
    const char *fl = co.fixed_lengths ? co.fixed_lengths : "32,128,512";
    for (const char *q = fl; strcmp(fl, "none") && *q && nsets < 8; nsets++) {
        char *end;
        long len = strtol(q, &end, 10);
        if (end == q || len < 2 || len > 1 << 20) {
            emb_fail(&err, EMB_ERR_INVALID_ARG, "--fixed-lengths %s: expected a comma list of lengths >= 2, or none", fl);
            goto fail;
        }
        if (bench_fixed(&sets[nsets], (int)len, fixed_tokens)) { emb_fail(&err, EMB_ERR_NOMEM, "out of memory"); goto fail; }
        q = *end == ',' ? end + 1 : end;
    }
    /* On a GPU the corpus mix is over in tens of milliseconds, so filling and
     * draining the pipeline weighs in its figure; the same mix N times over
     * (--corpus-copies, 8 on a GPU by default; last, so the fixed workloads
     * keep their places) is the steady state of a bulk job. */
    const int copies = co.corpus_copies ? co.corpus_copies : gpu ? BENCH_CORPUS_COPIES : 1;
    if (copies > 1 && sets[0].n > 0) {
        bench_set *b = &sets[nsets];
        size_t rcap = 0;
        snprintf(b->name, sizeof b->name, "corpus mix x%d", copies);
        for (int c = 0; c < copies; c++)
            for (size_t i = 0; i < sets[0].n; i++)
                if (bench_push(b, sets[0].texts[i], sets[0].lens[i], &rcap)) {
                    emb_fail(&err, EMB_ERR_NOMEM, "out of memory");
                    goto fail;
                }
        nsets++;
    }
    int dim = checked_dim(m, &co.eo, &err);
    if (dim < 0) goto fail;
    int repeat = gpu ? 5 : 2;
    printf("embedc bench: model %s, backend %s, max length %d, %d threads, best of %d passes\n",
           m->mf.dir, m->be->name, m->max_length, co.threads, repeat);
    if (m->be->peak_flops > 0) printf("device peak (dense fp16/bf16): %.1f TFLOP/s\n", m->be->peak_flops / 1e12);
    printf("\n| workload | docs | tokens | mean len | seconds | tokens/s | docs/s | padding | MFU |\n"
           "|---|---|---|---|---|---|---|---|---|\n");
    FILE *js = NULL;
    char devjs[2048] = "";
    if (co.summary_json) {
        if (io_out_open(co.summary_json, 0, &js_out, &err) != EMB_OK) goto fail;
        js = io_out_stream(js_out);
    }
    if (js) fprintf(js, "{\"backend\": \"%s\", \"peak_flops\": %.6g, \"workloads\": [", m->be->name, m->be->peak_flops);
    emb_encode_stats host[9];   /* each workload's best pass, for the host table */
    for (int k = 0; k < nsets; k++) {
        bench_set *b = &sets[k];
        free(out);
        out = malloc((b->n ? b->n : 1) * (size_t)dim * sizeof *out);
        if (!out) { emb_fail(&err, EMB_ERR_NOMEM, "out of memory"); goto fail; }
        double best = 1e30;
        emb_encode_stats st = {0}, pass;
        for (int rep = 0; rep < repeat; rep++) {
            double t0 = cli_now_s();
            if (emb_encode(m, (const char *const *)b->texts, b->lens, b->n, &co.eo, out, &pass, &err) != EMB_OK)
                goto fail;
            double s = cli_now_s() - t0;
            if (s < best) best = s, st = pass;
        }
        host[k] = st;
        double mfu = m->be->peak_flops > 0 ? st.flops / best / m->be->peak_flops : -1;
        char mfus[32] = "n/a";
        if (mfu >= 0) snprintf(mfus, sizeof mfus, "%.1f%%", 100 * mfu);
        printf("| %s | %zu | %llu | %.1f | %.3f | %.0f | %.1f | 1.00 | %s |\n", b->name, b->n,
               (unsigned long long)st.tokens, b->n ? (double)st.tokens / b->n : 0.0, best, st.tokens / best,
               b->n / best, mfus);
        if (fflush(stdout) != 0) {
            emb_fail(&err, EMB_ERR_IO, "writing standard output: %s", strerror(errno));
            goto fail;
        }
        if (js)
            fprintf(js, "%s{\"workload\": \"%s\", \"documents\": %zu, \"tokens\": %llu, \"seconds\": %.6f, "
                        "\"tokens_per_second\": %.1f, \"documents_per_second\": %.2f, \"flops\": %.6g, \"mfu\": %.6f, "
                        "\"host\": {\"windows\": %llu, \"read_seconds\": %.6f, \"tokenize_seconds\": %.6f, "
                        "\"wait_seconds\": %.6f, \"batch_seconds\": %.6f, \"encode_seconds\": %.6f, "
                        "\"write_seconds\": %.6f, \"gpu_idle_estimate\": %.6f}}",
                    k ? ", " : "", b->name, b->n, (unsigned long long)st.tokens, best, st.tokens / best, b->n / best,
                    st.flops, mfu, (unsigned long long)st.windows, st.read_seconds, st.tokenize_seconds,
                    st.wait_seconds, st.batch_seconds, st.encode_seconds, st.write_seconds, host_gap(&st));
    }
    /* The host side of the best passes: is the pipeline keeping the device fed? */
    printf("\nhost pipeline, ms per window (best pass); device idle = the calling thread's share of "
           "time outside the backend (idle time inside it is not seen)\n\n"
           "| workload | windows | read | tokenize | wait | batch | encode | write | device idle |\n"
           "|---|---|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < nsets; k++) {
        const emb_encode_stats *h = &host[k];
        const double per = h->windows ? 1e3 / (double)h->windows : 0.0;
        printf("| %s | %llu | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.1f%% |\n", sets[k].name,
               (unsigned long long)h->windows, h->read_seconds * per, h->tokenize_seconds * per,
               h->wait_seconds * per, h->batch_seconds * per, h->encode_seconds * per, h->write_seconds * per,
               100.0 * host_gap(h));
    }
    /* What the backends say of their runs (the CUDA backend's graphs),
     * counted over every pass. */
    print_run_notes(m, stdout, "\n", ", all passes", js);
    /* Several devices: each one's share of the corpus mix, and the scaling
     * efficiency against one device on the same corpus in the same run. */
    if (m->nworkers > 1 && nsets > 0) {
        bench_set *b = &sets[0];
        emb_encode_stats all = {0}, one = {0};
        double t_all = 1e30, t_one = 1e30;
        eng_run_options r1 = {0};
        r1.max_workers = 1;
        for (int rep = 0; rep < repeat; rep++) {
            double t0 = cli_now_s();
            if (emb_encode(m, (const char *const *)b->texts, b->lens, b->n, &co.eo, out, &all, &err) != EMB_OK) goto fail;
            double s1 = cli_now_s() - t0;
            if (s1 < t_all) t_all = s1;
            t0 = cli_now_s();
            if (eng_encode_array(m, (const char *const *)b->texts, b->lens, b->n, &co.eo, &r1, out, &one, &err) != EMB_OK)
                goto fail;
            s1 = cli_now_s() - t0;
            if (s1 < t_one) t_one = s1;
        }
        uint64_t mx = 0, sum = 0;
        /* With --tensor-parallel N one worker is a group of N devices, each
         * computing the group's tokens (on its share of the model). */
        const int per = all.devices / (m->nworkers > 0 ? m->nworkers : 1);
        printf("\n| device | tokens | tokens/s | share |\n|---|---|---|---|\n");
        for (int k = 0; k < all.devices; k++) {
            sum += all.device_tokens[k];
            if (all.device_tokens[k] > mx) mx = all.device_tokens[k];
        }
        for (int k = 0; k < all.devices; k++)
            printf("| %d | %llu | %.0f | %.1f%% |\n", k, (unsigned long long)all.device_tokens[k],
                   all.device_tokens[k] / t_all, sum ? 100.0 * all.device_tokens[k] / sum : 0.0);
        double mean = all.devices ? (double)sum / all.devices : 0;
        char unit[64] = "one device";
        if (per > 1) snprintf(unit, sizeof unit, "one tensor-parallel group of %d devices", per);
        printf("\n%s on %d devices: %.0f tokens/s; %s %.0f tokens/s; scaling efficiency %.1f%%; "
               "busiest device %.1f%% above the mean\n", b->name, all.devices, all.tokens / t_all, unit,
               one.tokens / t_one, 100.0 * (all.tokens / t_all) / (m->nworkers * (one.tokens / t_one)),
               mean > 0 ? 100.0 * (mx - mean) / mean : 0.0);
        size_t o2 = (size_t)snprintf(devjs, sizeof devjs, ", \"devices\": %d, \"device_tokens\": [", all.devices);
        for (int k = 0; k < all.devices && o2 < sizeof devjs - 64; k++)
            o2 += (size_t)snprintf(devjs + o2, sizeof devjs - o2, "%s%llu", k ? ", " : "",
                                   (unsigned long long)all.device_tokens[k]);
        snprintf(devjs + o2, sizeof devjs - o2, "], \"tensor_parallel\": %d, \"scaling_efficiency\": %.6f", per,
                 (all.tokens / t_all) / (m->nworkers * (one.tokens / t_one)));
    }
    if (js) {
        fprintf(js, "]%s}\n", devjs);   /* closes run_notes, or workloads when there are none */
        if (io_out_commit(js_out, &err) != EMB_OK) { emb_fail_prefix(&err, "--summary-json"); goto fail; }
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "embedc: error: %s\n", err.message);
done:
    for (size_t k = 0; k < sizeof sets / sizeof sets[0]; k++) bench_set_free(&sets[k]);
    io_out_close(js_out);
    free(out);
    io_reader_close(r);
    emb_model_free(m);
    return rc;
}

/* SIGINT, SIGTERM and SIGHUP remove the temporary output files, then kill
 * us with the signal's default action so the exit status tells what
 * happened. A signal already ignored (nohup, a background job) stays so. */
static void on_fatal_signal(int sig) {
    io_remove_temp_files();
    raise(sig);     /* SA_RESETHAND restored the default action */
}

static void remove_temp_files_on_signals(void) {
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old;
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN) sigaction(sigs[i], &sa, NULL);
    }
}

/* encode, tokenize and bench read --input, never a positional argument (a
 * stray one would otherwise leave stdin read in its place); info takes one
 * model; similarity takes the texts. */
static int check_positionals(const char *cmd, int argc, char **argv) {
    int max = !strcmp(cmd, "info") ? 1 : (!strcmp(cmd, "encode") || !strcmp(cmd, "tokenize") ||
                                           !strcmp(cmd, "bench")) ? 0 : argc;
    if (argc - optind <= max) return 0;
    fprintf(stderr, "embedc %s: unexpected argument \"%s\"%s\n", cmd, argv[optind + max],
            max ? "" : " (give the input with -i/--input, the output with -o/--output)");
    return -1;
}

/* Every byte for standard output must have reached it: a full disk or
 * /dev/full turns success into an error with a message. */
static int finish_output(int rc) {
    /* A write that failed earlier (a large printf) left ferror set and, most
     * often, its errno: keep that one when the final flush has none. */
    int earlier = ferror(stdout) ? errno : 0;
    errno = 0;
    int bad = fflush(stdout) != 0 || ferror(stdout);
    int e = errno ? errno : earlier;
    if (fclose(stdout) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (bad && rc == 0) {
        fprintf(stderr, "embedc: error: writing standard output: %s\n", strerror(e ? e : EIO));
        rc = 1;
    }
    if ((fflush(stderr) != 0 || ferror(stderr)) && rc == 0) rc = 1;
    return rc;
}

static int run_command(const char *cmd, const cli_opts *o, int argc, char **argv) {
    if (o->help) {
        usage(stdout);
        return 0;
    }
    if (check_positionals(cmd, argc, argv)) return 2;
    if (!strcmp(cmd, "encode")) return cmd_encode(o);
    if (!strcmp(cmd, "tokenize")) return cmd_tokenize(o);
    if (!strcmp(cmd, "info")) return cmd_info(o, argc, argv);
    if (!strcmp(cmd, "similarity")) return cmd_similarity(o, argc, argv);
    if (!strcmp(cmd, "bench")) return cmd_bench(o);
    if (!strcmp(cmd, "index")) return cmd_index(&o->x, o->output, o->quiet, argc, argv);
    if (!strcmp(cmd, "search")) return cmd_search(&o->x, &o->eo, load_model_cb, o, argc, argv);
    if (!strcmp(cmd, "bench-index")) return cmd_bench_index(&o->x, o->summary_json, argc, argv);
    if (!strcmp(cmd, "plot")) return cmd_plot(&o->x, o->output, o->quiet, argc, argv);
    fprintf(stderr, "embedc: unknown command \"%s\" (try embedc --help)\n", cmd);
    return 2;
}

int main(int argc, char **argv) {
    /* A file-size limit must fail the write (EFBIG) with a message, not kill us. */
    signal(SIGXFSZ, SIG_IGN);
    remove_temp_files_on_signals();
    /* Output to a file or pipe in 64 KiB blocks: fewer writes. */
    if (!isatty(STDOUT_FILENO)) setvbuf(stdout, NULL, _IOFBF, (size_t)1 << 16);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return finish_output(argc < 2 ? 2 : 0);
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("embedc 0.1.0\n");
        cli_extra_features(stdout);
        return finish_output(0);
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "similar-words")) return cli_similar_words(argc - 1, argv + 1);
    if (!strcmp(cmd, "analogy")) return cli_analogy(argc - 1, argv + 1);
    if (!strcmp(cmd, "fit-tfidf")) return cli_fit_tfidf(argc - 1, argv + 1);
    cli_opts o;
    if (parse_opts(argc - 1, argv + 1, &o)) return 2;
    o.x.field = o.field;
    /* getopt ran over argv + 1: positional arguments start at optind there. */
    return finish_output(run_command(cmd, &o, argc - 1, argv + 1));
}
