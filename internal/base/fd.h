/* fd.h - file descriptors that may or may not be open. */
#ifndef WAKEQ_BASE_FD_H
#define WAKEQ_BASE_FD_H

/* Closes *fd when it is open (>= 0) and sets it to -1, so that a second
 * call, or a later check of *fd, sees it closed. Does not block (errors
 * of close are ignored: the descriptor is released either way). */
void fd_close(int *fd);

#endif
