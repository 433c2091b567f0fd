/* cli.h — the kinfer subcommands. Each returns the process exit status and
 * is called only from main(); none calls exit(). */
#ifndef KINFER_CLI_H
#define KINFER_CLI_H

int kinfer_cmd_worker(int argc, char **argv);       /* cmd_worker.c */
int kinfer_cmd_send(int argc, char **argv);         /* cmd_send.c */
int kinfer_cmd_bench(int argc, char **argv);        /* cmd_bench.c */
int kinfer_cmd_check_config(int argc, char **argv); /* cmd_check_config.c */

#endif
