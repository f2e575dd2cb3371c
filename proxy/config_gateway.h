/*
 * config_gateway: the gateway's part of the configuration file (routes),
 * and what it shares with config.c.  Private to the two.
 */
#ifndef EGRESSD_CONFIG_GATEWAY_H
#define EGRESSD_CONFIG_GATEWAY_H

#include <libconfig.h>

#include "config.h"
#include "load.h"

/* routes = ( { name = ...; prefix = ...; origin = ...; ... } ): 0 or -1. */
int config_load_routes(struct load *ld, const config_setting_t *root,
                       struct config *c);

/* Free what the routes own. */
void config_free_routes(struct config *c);

/* Shared with config.c. */
int config_valid_name(const char *s);
int config_valid_method(const char *s);
int config_load_network(struct load *ld, const config_setting_t *e, void *arg);
void config_relative(const struct load *ld, const char *path, char *out,
                     size_t len);

#endif
