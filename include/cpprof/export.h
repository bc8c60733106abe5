/*
 * cpprof/export.h - CPPROF_EXPORT marks the public API: libcpprof is built
 * with hidden visibility, so only these names leave the shared library.
 * Included by every public header.
 */
#ifndef CPPROF_EXPORT_H
#define CPPROF_EXPORT_H

#if defined(__GNUC__)
#define CPPROF_EXPORT __attribute__((visibility("default")))
#else
#define CPPROF_EXPORT
#endif

#endif /* CPPROF_EXPORT_H */
