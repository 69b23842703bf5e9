/*
 * target.h -- the target this binary was compiled for, fixed at compile time.
 *
 * APPD_TARGET is "<arch>-<os>", the same names as the Makefile's TARGET and
 * the manifest's artifact keys ("<target>" for the app-server build,
 * "appd-<target>" for appd itself): x86_64-linux, aarch64-linux,
 * armv7-linux, i386-linux, riscv64-linux, mipsel-linux, mips64el-linux,
 * mips-linux, aarch64-macos, x86_64-macos, x86_64-freebsd, aarch64-freebsd.
 *
 * It comes from the compiler's predefined macros, never from uname(2): an
 * i386 binary on an x86_64 kernel is i386-linux, an armhf binary is
 * armv7-linux, and big- and little-endian MIPS differ (the kernel says
 * "mips" for both). -DAPPD_TARGET="..." overrides it.
 */
#ifndef APPD_PLATFORM_TARGET_H
#define APPD_PLATFORM_TARGET_H

#ifndef APPD_TARGET

#if defined(__x86_64__)
#define APPD_TARGET_ARCH "x86_64"
#elif defined(__aarch64__)
#define APPD_TARGET_ARCH "aarch64"
#elif defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH >= 7
#define APPD_TARGET_ARCH "armv7"
#elif defined(__arm__)
#define APPD_TARGET_ARCH "arm"
#elif defined(__i386__)
#define APPD_TARGET_ARCH "i386"
#elif defined(__riscv) && __riscv_xlen == 64
#define APPD_TARGET_ARCH "riscv64"
#elif defined(__mips__) && defined(__mips64) && defined(__MIPSEL__)
#define APPD_TARGET_ARCH "mips64el"
#elif defined(__mips__) && defined(__mips64)
#define APPD_TARGET_ARCH "mips64"
#elif defined(__mips__) && defined(__MIPSEL__)
#define APPD_TARGET_ARCH "mipsel"
#elif defined(__mips__)
#define APPD_TARGET_ARCH "mips"
#elif defined(__powerpc64__) && defined(__LITTLE_ENDIAN__)
#define APPD_TARGET_ARCH "ppc64le"
#else
#error "unknown CPU architecture: build with -DAPPD_TARGET=\"<arch>-<os>\""
#endif

#if defined(__linux__)
#define APPD_TARGET_OS "linux"
#elif defined(__APPLE__)
#define APPD_TARGET_OS "macos"
#elif defined(__FreeBSD__)
#define APPD_TARGET_OS "freebsd"
#else
#error "unknown OS: build with -DAPPD_TARGET=\"<arch>-<os>\""
#endif

#define APPD_TARGET APPD_TARGET_ARCH "-" APPD_TARGET_OS
#endif /* APPD_TARGET */

#endif
