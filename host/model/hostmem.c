/* Host memory a load may still take (see hostmem.h). */
#include "hostmem.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

int emb_parse_size(const char *s, uint64_t *bytes) {
    if (!s) return -1;
    while (isspace((unsigned char)*s)) s++;
    if (!isdigit((unsigned char)*s) && *s != '.') return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0) return -1;
    double scale = 1;
    switch (toupper((unsigned char)*end)) {
    case 'K': scale = 1024.0, end++; break;
    case 'M': scale = 1024.0 * 1024, end++; break;
    case 'G': scale = 1024.0 * 1024 * 1024, end++; break;
    case 'T': scale = 1024.0 * 1024 * 1024 * 1024, end++; break;
    default: break;
    }
    if (toupper((unsigned char)*end) == 'I') end++;   /* "GiB" */
    if (toupper((unsigned char)*end) == 'B') end++;
    while (isspace((unsigned char)*end)) end++;
    if (*end || v * scale >= 1.8e19) return -1;
    *bytes = (uint64_t)(v * scale);
    return 0;
}

/* The first number in the file, or -1 (absent, unreadable, or "max"). */
static int read_u64(const char *path, uint64_t *v) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    unsigned long long x;
    int ok = fscanf(f, "%llu", &x) == 1;
    fclose(f);
    if (!ok) return -1;
    *v = x;
    return 0;
}

/* The value of `key` in a "key value" file (memory.stat, /proc/meminfo
 * with its "key: value kB" form). */
static int read_key(const char *path, const char *key, uint64_t *v) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[256];
    const size_t kl = strlen(key);
    int found = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, kl) != 0 || (line[kl] != ' ' && line[kl] != ':')) continue;
        unsigned long long x;
        if (sscanf(line + kl + 1, " %llu", &x) == 1) {
            *v = x;
            found = 0;
        }
        break;
    }
    fclose(f);
    return found;
}

/* What the cgroup may still allocate: limit - (usage - inactive file pages),
 * or -1 when the cgroup sets no limit. */
static int cgroup_room(uint64_t *room, const char **source) {
    uint64_t limit, usage, inactive = 0;
    /* cgroup v2: this process's own group ("0::/path" in /proc/self/cgroup),
     * which is the root of /sys/fs/cgroup inside a container's namespace. */
    char dir[600] = "/sys/fs/cgroup", path[600], line[512];
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (f) {
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "0::/", 4) == 0) {
                line[strcspn(line, "\n")] = 0;
                snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", line + 3);
                if (line[4] && access(path, R_OK) == 0) snprintf(dir, sizeof dir, "/sys/fs/cgroup%s", line + 3);
                break;
            }
        fclose(f);
    }
    char max_p[700], cur_p[700], stat_p[700];
    snprintf(max_p, sizeof max_p, "%s/memory.max", dir);
    snprintf(cur_p, sizeof cur_p, "%s/memory.current", dir);
    snprintf(stat_p, sizeof stat_p, "%s/memory.stat", dir);
    if (read_u64(max_p, &limit) == 0 && read_u64(cur_p, &usage) == 0) {
        read_key(stat_p, "inactive_file", &inactive);
        *source = "cgroup memory.max";
    } else if (read_u64("/sys/fs/cgroup/memory/memory.limit_in_bytes", &limit) == 0 &&
               read_u64("/sys/fs/cgroup/memory/memory.usage_in_bytes", &usage) == 0) {
        read_key("/sys/fs/cgroup/memory/memory.stat", "total_inactive_file", &inactive);
        if (limit >= (UINT64_C(1) << 60)) return -1;   /* v1's "no limit" is a huge number */
        *source = "cgroup memory.limit_in_bytes";
    } else {
        return -1;
    }
    const uint64_t held = usage > inactive ? usage - inactive : 0;
    *room = limit > held ? limit - held : 0;
    return 0;
}

int emb_host_memory_available(uint64_t *bytes, const char **source) {
    const char *env = getenv("EMBEDC_HOST_MEMORY");
    if (env && *env) {
        if (strcasecmp(env, "unlimited") == 0) return 0;
        if (emb_parse_size(env, bytes) == 0) {
            *source = "EMBEDC_HOST_MEMORY";
            return 1;
        }
        /* A value that does not parse is ignored, not fatal: the checks below still apply. */
    }
    int known = 0;
    uint64_t kb;
    if (read_key("/proc/meminfo", "MemAvailable", &kb) == 0) {
        *bytes = kb * 1024;
        *source = "MemAvailable";
        known = 1;
    }
    uint64_t room;
    const char *cg;
    if (cgroup_room(&room, &cg) == 0 && (!known || room < *bytes)) {
        *bytes = room;
        *source = cg;
        known = 1;
    }
    return known;
}
