/* cli.h — the kinfer subcommands. Each returns the process exit status and
 * is called only from main(); none calls exit(). */
#ifndef KINFER_CLI_H
#define KINFER_CLI_H

int kinfer_cmd_worker(int argc, char **argv);       /* cmd_worker.c */
int kinfer_cmd_send(int argc, char **argv);         /* cmd_send.c */
int kinfer_cmd_bench(int argc, char **argv);        /* cmd_bench.c */
int kinfer_cmd_check_config(int argc, char **argv); /* cmd_check_config.c */
int kinfer_cmd_batch(int argc, char **argv);        /* cmd_batch.c */
int kinfer_cmd_gateway(int argc, char **argv);      /* gateway/cmd_gateway.c */

/* blas_guard.c: called first by `kinfer worker`. Returns 0 to go on (the
 * BLAS kernels are fine, or the operator allowed generic ones); re-executes
 * the process with OPENBLAS_CORETYPE set when OpenBLAS runs generic
 * kernels on a CPU with better ones; returns 1 (after saying why) when
 * that did not fix it. */
int kinfer_blas_guard(char **argv);

#endif
