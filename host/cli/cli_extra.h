/*
 * The CLI's index and picture commands (host/cli/index_cmd.c,
 * host/cli/plot_cmd.c) and their options, parsed by main.c's getopt loop
 * through CLI_EXTRA_LONGOPTS and cli_extra_opt().
 */
#ifndef EMBEDC_CLI_EXTRA_H
#define EMBEDC_CLI_EXTRA_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include "embedc.h"
#include "engine.h"
#include "io.h"

typedef struct {
    const char *index_out, *index_spec, *index_metric, *index_train, *id_field;
    uint64_t index_train_size;
    const char *index_in, *texts, *queries;
    int k, nprobe, ef, holdout;
    const char *labels, *color_by, *heatmap, *points_out;
    int width, height;
    int output_given;
    const char *field;         /* set by main: the JSONL text field (--field) */
} cli_extra;

enum { OX_INDEX = 512, OX_SPEC, OX_METRIC, OX_TRAIN, OX_TRAIN_SIZE, OX_ID_FIELD, OX_NPROBE, OX_EF,
       OX_TEXTS, OX_QUERIES, OX_HOLDOUT, OX_LABELS, OX_COLOR_BY, OX_HEATMAP, OX_WIDTH, OX_HEIGHT,
       OX_POINTS_OUT };

#define CLI_EXTRA_LONGOPTS                                                                         \
    {"index", required_argument, 0, OX_INDEX}, {"index-spec", required_argument, 0, OX_SPEC},      \
    {"index-metric", required_argument, 0, OX_METRIC}, {"index-train", required_argument, 0, OX_TRAIN}, \
    {"index-train-size", required_argument, 0, OX_TRAIN_SIZE},                                     \
    {"id-field", required_argument, 0, OX_ID_FIELD}, {"nprobe", required_argument, 0, OX_NPROBE},  \
    {"ef", required_argument, 0, OX_EF}, {"texts", required_argument, 0, OX_TEXTS},                \
    {"queries", required_argument, 0, OX_QUERIES}, {"holdout", required_argument, 0, OX_HOLDOUT},  \
    {"labels", required_argument, 0, OX_LABELS}, {"color-by", required_argument, 0, OX_COLOR_BY},  \
    {"heatmap", required_argument, 0, OX_HEATMAP}, {"width", required_argument, 0, OX_WIDTH},      \
    {"height", required_argument, 0, OX_HEIGHT}, {"points-out", required_argument, 0, OX_POINTS_OUT}

#define CLI_EXTRA_USAGE                                                                            \
    "  index       build a FAISS index from vectors: embedc index VECTORS.npy --index-spec SPEC -o OUT.faiss\n" \
    "  search      embed queries and search an index: embedc search --index F.faiss [-k 10] \"query\" ...\n" \
    "  bench-index recall@1/10/100 against exact search, and queries/s: embedc bench-index VECTORS.npy --index-spec SPEC\n" \
    "  plot        2-D PCA picture of vectors: embedc plot VECTORS.npy [--labels FILE] -o space.png|.svg\n"

#define CLI_EXTRA_OPTIONS_USAGE                                                                    \
    "index options (encode, index, search, bench-index):\n"                                        \
    "      --index FILE           encode: also build a FAISS index there; search/bench-index: the index\n" \
    "      --index-spec SPEC      FAISS index_factory string (Flat, HNSW32, IVF4096,PQ64, ...; default Flat)\n" \
    "      --index-metric ip|l2   (default: ip for a normalized cosine or dot model, else l2)\n"  \
    "      --index-train FILE.npy train on these vectors instead of a sample of the job's\n"       \
    "      --index-train-size N   reservoir sample size (default: 39 per k-means centroid, >= 1000)\n" \
    "      --id-field NAME        JSONL integer field holding each document's id (default: its index)\n" \
    "  -k N                       search: results per query (default 10)\n"                        \
    "      --nprobe N / --ef N    search-time IVF lists probed / HNSW efSearch\n"                  \
    "      --texts FILE           search: print each hit's document from this input\n"             \
    "      --queries FILE.npy     bench-index: query vectors (default: hold out --holdout N rows, 1000)\n" \
    "picture options (plot, similarity --heatmap):\n"                                              \
    "      --labels FILE          one label per line, per vector\n"                                \
    "      --color-by FILE        one category per line: the point's colour\n"                     \
    "      --heatmap FILE         similarity: also draw the matrix (.png or .svg)\n"               \
    "      --width N --height N   picture size in pixels\n"                                        \
    "      --points-out FILE      plot: write each point's pixel position and label box (TSV)\n"

/* One line: whether FAISS (and its version) and pictures are built in. */
void cli_extra_features(FILE *f);

/* Handles one of the options above; returns 1 if c was one, -1 on a bad value. */
int cli_extra_opt(int c, const char *arg, cli_extra *x);

/* Loads the model named by the common options (main.c's load_model). */
typedef emb_model *(*cli_load_fn)(const void *opts, emb_error *err);

/* encode --index: the writer/reader pair that tees vectors into the index. */
typedef struct cli_index_job cli_index_job;
emb_status cli_index_job_open(const cli_extra *x, emb_model *m, const emb_encode_options *eo, int dim,
                              int quiet, cli_index_job **out, emb_error *err);
int cli_index_read(void *ud, const char **text, size_t *len, emb_error *err);   /* wraps io_reader_next */
emb_status cli_index_write(void *ud, uint64_t first, size_t n, const float *vecs, int dim, emb_error *err);
/* eng_run_options.doc_label: the --id-field value of document doc. */
int cli_index_doc_label(void *ud, uint64_t doc, char *buf, size_t cap);
void cli_index_job_set(cli_index_job *j, io_reader *r, io_writer *w);
emb_status cli_index_job_finish(cli_index_job *j, emb_error *err);
void cli_index_job_close(cli_index_job *j);

int cmd_index(const cli_extra *x, const char *output, int quiet, int argc, char **argv);
int cmd_search(const cli_extra *x, const emb_encode_options *eo, cli_load_fn load, const void *opts,
               int argc, char **argv);
int cmd_bench_index(const cli_extra *x, const char *summary_json, int argc, char **argv);
int cmd_plot(const cli_extra *x, const char *output, int quiet, int argc, char **argv);
/* similarity --heatmap: n x n matrix of the texts. */
int cli_heatmap(const cli_extra *x, const float *sim, int n, const char *const *texts, const char *model);

#endif
