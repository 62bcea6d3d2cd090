/*
 * no_server.c - `smoe serve` in a build without libmicrohttpd and cJSON: the Makefile
 * compiles this file instead of the server when it cannot find them.
 */
#include "../cli.h"

#include <stdio.h>

int cmd_serve(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "%s: built without server support: install libmicrohttpd-dev and libcjson-dev, then "
                    "run make again\n", g_cmd);
    return 1;
}
