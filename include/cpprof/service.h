/*
 * cpprof/service.h - the periodic profile service: saves chosen profiles
 * into a folder on a schedule (CPU profiles in rotation) and optionally
 * serves /debug/pprof/, with the semantics of the Go pprof-service.
 *
 * See <cpprof.h> for the conventions and docs/service.md for the file
 * naming, the schedule and the environment variables.  Every function may
 * be called from any thread, never from a signal handler.
 */
#ifndef CPPROF_SERVICE_H
#define CPPROF_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cpprof/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cpprof_service_config {
    bool enabled;               /* false: the service does nothing */
    /* Serve /debug/pprof/ here ("HOST:PORT", see cpprof_http_options);
     * NULL or "": no HTTP server. */
    const char *listen_address;
    const char *folder;         /* where files go (created 0755) */
    /* Profile names: "cpu" or any registered profile or alias. */
    const char *const *profile_names;
    size_t nprofile_names;
    /* Seconds between saves (0: save only at stop).  Per profile when
     * there are as many as names, else the first applies to all; none:
     * 0 for all. */
    const int *intervals;
    size_t nintervals;
    /* debug level of each file (0: .pb.gz, else text in .txt); matched
     * to names as intervals are. */
    const int *debug_values;
    size_t ndebug_values;
    /* Keep only the newest K files of each profile (0: keep all). */
    int retention;
} cpprof_service_config;

typedef struct cpprof_service cpprof_service;

/*
 * Validates cfg and creates a service (not started); strings and arrays
 * are copied.  -EINVAL for a missing folder, an unknown profile name
 * (reported on stderr too), a negative interval or retention or a debug
 * level outside 0..2; -ENOMEM.  A disabled config gives a service whose
 * start and stop do nothing.
 */
CPPROF_EXPORT int cpprof_service_new(const cpprof_service_config *cfg,
                       cpprof_service **out);
/*
 * Reads the configuration from CPPROF_SERVICE_ENABLED, _ADDR, _FOLDER,
 * _PROFILES (comma-separated), _INTERVALS, _DEBUG (comma-separated
 * integers) and _RETENTION, then as cpprof_service_new.  -EINVAL (with a
 * message on stderr) for a malformed value.
 */
CPPROF_EXPORT int cpprof_service_new_from_env(cpprof_service **out);
/*
 * Creates the folder, starts the HTTP server when an address is set,
 * starts CPU profiling when "cpu" is listed and schedules the saves.
 * -EALREADY when running; mkdir's or the server's error otherwise.
 */
CPPROF_EXPORT int cpprof_service_start(cpprof_service *s);
/*
 * Stops the schedule, finishes the CPU profile file, saves every other
 * profile once more and stops the HTTP server.  Returns the first save
 * error (every profile is still attempted); 0 when not running.
 */
CPPROF_EXPORT int cpprof_service_stop(cpprof_service *s);
/* Stops s if running and frees it.  NULL is a no-op. */
CPPROF_EXPORT void cpprof_service_free(cpprof_service *s);
/* The HTTP port while running with an address, else 0. */
CPPROF_EXPORT int cpprof_service_http_port(const cpprof_service *s);

#ifdef __cplusplus
}
#endif

#endif /* CPPROF_SERVICE_H */
