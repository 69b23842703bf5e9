/* version.h -- appd's own version (cliVersion; the clientInfo.version of
 * its initialize probes). */
#ifndef APPD_VERSION_H
#define APPD_VERSION_H

#define APPD_VERSION "0.1.0"

#endif
