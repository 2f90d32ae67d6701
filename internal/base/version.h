/* version.h - the version of wakeq, one string for all three binaries.
 *
 * It is made once, by the Makefile: `git describe` of the tree (1.2.3 on a
 * tag v1.2.3, 1.2.3-4-gabcdef after it, 0.0.0-gabcdef before the first
 * tag, "-dirty" with uncommitted changes), else 0.0.0-unknown (a tree
 * without git, as in the image builds); `make WAKEQ_VERSION=…` overrides.
 * It reaches the code as the generated header version_gen.h.
 */
#ifndef WAKEQ_BASE_VERSION_H
#define WAKEQ_BASE_VERSION_H

/* The version text ("0.0.0-g1e309b7"). Static storage. */
const char *version_string(void);

/* Whether the command line asks for the version: "--version" among
 * argv[1..] before a "--" (as config_load looks for --help). */
int version_asked(int argc, char **argv);

#endif
