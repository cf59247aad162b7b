/*
 * fakenvml.c: a TEST AND DEMO DOUBLE of NVIDIA's NVML library (libnvidia-ml.so.1).
 *
 * It is never shipped to GPU nodes. Tests and the local demo build it with gcc and load it in place of
 * the real library, so pynvml (nvidia-ml-py) and the agent run unchanged against it.
 *
 * It exports the C symbols pynvml looks up (versioned names where pynvml uses them) with the real
 * signatures and struct layouts, and answers from a state file of key=value lines whose path is in the
 * environment variable FAKE_NVML_STATE. The file is re-read whenever its inode, size or mtime changes,
 * so a test changes the "hardware" by rewriting it (gpu_steward_agent.fakenvml.write_state writes it
 * atomically: a new inode every time). Keys (see write_state for the dict form):
 *
 *   driver=550.54.15            init_error=<code>      (nvmlInit fails, e.g. LIB_RM_VERSION_MISMATCH)
 *   gpu.count=N
 *   gpu.I.uuid / name / util / memutil / mem_total / mem_used / power_mw / temp
 *   gpu.I.error=<code>          every device query on GPU I fails with it (e.g. GPU_IS_LOST)
 *   gpu.I.procutil=0|1          nvmlDeviceGetProcessUtilization supported (1) or NOT_SUPPORTED (0)
 *   gpu.I.mig_capable=0|1       nvmlDeviceGetMigMode answers (1) or NOT_SUPPORTED (0)
 *   gpu.I.proc.count=N, gpu.I.proc.J.pid / mem / sm / memutil / gi / ci
 *   gpu.I.mig.count=N,  gpu.I.mig.K.uuid / name / gi / ci / mem_total / mem_used
 *   gpu.I.mem_reserved, gpu.I.pci_bus_id
 *   Optional hardware fields; a key that is absent makes its NVML call answer NOT_SUPPORTED:
 *   gpu.I.sm_clock / mem_clock (MHz), mem_temp (C), energy_mj, pcie_replay, enc_util / dec_util (%),
 *   gpu.I.remap_corr / remap_unc / remap_pending / remap_failure, gpu.I.nvlinks=N with
 *   gpu.I.nvlink_tx_kib / nvlink_rx_kib (per link), gpu.I.xid_capable=0|1, gpu.I.xid.count=N,
 *   gpu.I.xid.J=<code> (every XID since boot, oldest first: an event set delivers the ones it has not yet)
 *   GPM (nvmlGpm*): gpu.I.gpm=0|1 (nvmlGpmQueryDeviceSupport), gpu.I.gpm_gr / gpm_sm / gpm_occ /
 *   gpm_tensor / gpm_dram (percent, as NVML reports them), gpm_pcie_tx / gpm_pcie_rx (MiB/s); the same
 *   gpm_* keys on a MIG entry (gpu.I.mig.K.gpm_sm ...) answer nvmlGpmMigSampleGet for its GPU instance.
 *
 * <code> is a number or an NVML error name without the NVML_ERROR_ prefix.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <pthread.h>

#define MAX_GPUS 32
#define MAX_PROCS 64
#define MAX_MIG 8

/* NVML return codes (nvml.h). */
enum {
    OK = 0, ERR_UNINITIALIZED = 1, ERR_INVALID_ARGUMENT = 2, ERR_NOT_SUPPORTED = 3, ERR_NO_PERMISSION = 4,
    ERR_NOT_FOUND = 6, ERR_INSUFFICIENT_SIZE = 7, ERR_DRIVER_NOT_LOADED = 9, ERR_TIMEOUT = 10,
    ERR_GPU_IS_LOST = 15, ERR_RESET_REQUIRED = 16, ERR_LIB_RM_VERSION_MISMATCH = 18, ERR_UNKNOWN = 999
};

typedef struct { unsigned int pid; unsigned long long usedGpuMemory; unsigned int gpuInstanceId;
                 unsigned int computeInstanceId; } nvmlProcessInfo_t;                  /* _v2 / _v3 layout */
typedef struct { unsigned int gpu; unsigned int memory; } nvmlUtilization_t;
typedef struct { unsigned long long total; unsigned long long free; unsigned long long used; } nvmlMemory_t;
typedef struct { unsigned int version; unsigned long long total; unsigned long long reserved;
                 unsigned long long free; unsigned long long used; } nvmlMemory_v2_t;
typedef struct { unsigned int pid; unsigned long long timeStamp; unsigned int smUtil; unsigned int memUtil;
                 unsigned int encUtil; unsigned int decUtil; } nvmlProcessUtilizationSample_t;
typedef struct { char busIdLegacy[16]; unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
                 char busId[32]; } nvmlPciInfo_t;
typedef union { double dVal; unsigned int uiVal; unsigned long ulVal; unsigned long long ullVal;
                long long sllVal; int siVal; unsigned short usVal; } nvmlValue_t;
typedef struct { unsigned int fieldId, scopeId; long long timestamp, latencyUsec; int valueType, nvmlReturn;
                 nvmlValue_t value; } nvmlFieldValue_t;
typedef struct { void *device; unsigned long long eventType, eventData; unsigned int gpuInstanceId,
                 computeInstanceId; } nvmlEventData_t;
typedef struct { unsigned int version, isSupportedDevice; } nvmlGpmSupport_t;
typedef struct { const char *shortName, *longName, *unit; } nvmlGpmMetricInfo_t;
typedef struct { unsigned int metricId; int nvmlReturn; double value; nvmlGpmMetricInfo_t metricInfo; } nvmlGpmMetric_t;
typedef struct { unsigned int version, numMetrics; void *sample1, *sample2; nvmlGpmMetric_t metrics[]; } nvmlGpmMetricsGet_t;

#define MAX_XID 64
#define NA -1LL                 /* an optional field the state file does not set: NOT_SUPPORTED */

struct proc { unsigned int pid, sm, memutil, gi, ci; unsigned long long mem; };

struct dev {
    int is_mig;
    int parent;                 /* index of the parent GPU for a MIG device */
    char uuid[96], name[96];
    unsigned int util, memutil, power_mw, temp, gi, ci;
    unsigned long long mem_total, mem_used;
    int error, procutil, mig_capable;
    int nproc; struct proc procs[MAX_PROCS];
    int nmig;
    unsigned long long mem_reserved;
    char pci_bus_id[32];
    long long sm_clock, mem_clock, mem_temp, energy_mj, pcie_replay, enc_util, dec_util;
    long long remap_corr, remap_unc, remap_pending, remap_failure, nvlinks, nvlink_tx_kib, nvlink_rx_kib;
    int xid_capable, nxid; unsigned long long xids[MAX_XID];
    int gpm; double gpm_gr, gpm_sm, gpm_occ, gpm_tensor, gpm_dram, gpm_pcie_tx, gpm_pcie_rx;
};

static struct dev gpus[MAX_GPUS];
static struct dev migs[MAX_GPUS][MAX_MIG];
static int ngpus;
static int init_error;
static char driver[80] = "550.54.15";
static int initialized;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct stat last_st;
static int loaded;

static int code_of(const char *v) {
    static const struct { const char *name; int code; } names[] = {
        {"UNINITIALIZED", 1}, {"INVALID_ARGUMENT", 2}, {"NOT_SUPPORTED", 3}, {"NO_PERMISSION", 4},
        {"NOT_FOUND", 6}, {"INSUFFICIENT_SIZE", 7}, {"DRIVER_NOT_LOADED", 9}, {"TIMEOUT", 10},
        {"IRQ_ISSUE", 11}, {"GPU_IS_LOST", 15}, {"RESET_REQUIRED", 16}, {"LIB_RM_VERSION_MISMATCH", 18},
        {"NO_DATA", 21}, {"GPU_NOT_FOUND", 28}, {"UNKNOWN", 999},
    };
    if (!*v) return 0;
    if (v[0] >= '0' && v[0] <= '9') return atoi(v);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(v, names[i].name) == 0) return names[i].code;
    return ERR_UNKNOWN;
}

static void set_dev_field(struct dev *d, const char *k, const char *v) {
    unsigned long long n = strtoull(v, NULL, 10);
    if (!strcmp(k, "uuid")) snprintf(d->uuid, sizeof d->uuid, "%s", v);
    else if (!strcmp(k, "name")) snprintf(d->name, sizeof d->name, "%s", v);
    else if (!strcmp(k, "util")) d->util = (unsigned int)n;
    else if (!strcmp(k, "memutil")) d->memutil = (unsigned int)n;
    else if (!strcmp(k, "mem_total")) d->mem_total = n;
    else if (!strcmp(k, "mem_used")) d->mem_used = n;
    else if (!strcmp(k, "power_mw")) d->power_mw = (unsigned int)n;
    else if (!strcmp(k, "temp")) d->temp = (unsigned int)n;
    else if (!strcmp(k, "error")) d->error = code_of(v);
    else if (!strcmp(k, "procutil")) d->procutil = (int)n;
    else if (!strcmp(k, "mig_capable")) d->mig_capable = (int)n;
    else if (!strcmp(k, "gi")) d->gi = (unsigned int)n;
    else if (!strcmp(k, "ci")) d->ci = (unsigned int)n;
    else if (!strcmp(k, "mem_reserved")) d->mem_reserved = n;
    else if (!strcmp(k, "pci_bus_id")) snprintf(d->pci_bus_id, sizeof d->pci_bus_id, "%s", v);
    else if (!strcmp(k, "sm_clock")) d->sm_clock = (long long)n;
    else if (!strcmp(k, "mem_clock")) d->mem_clock = (long long)n;
    else if (!strcmp(k, "mem_temp")) d->mem_temp = (long long)n;
    else if (!strcmp(k, "energy_mj")) d->energy_mj = (long long)n;
    else if (!strcmp(k, "pcie_replay")) d->pcie_replay = (long long)n;
    else if (!strcmp(k, "enc_util")) d->enc_util = (long long)n;
    else if (!strcmp(k, "dec_util")) d->dec_util = (long long)n;
    else if (!strcmp(k, "remap_corr")) d->remap_corr = (long long)n;
    else if (!strcmp(k, "remap_unc")) d->remap_unc = (long long)n;
    else if (!strcmp(k, "remap_pending")) d->remap_pending = (long long)n;
    else if (!strcmp(k, "remap_failure")) d->remap_failure = (long long)n;
    else if (!strcmp(k, "nvlinks")) d->nvlinks = (long long)n;
    else if (!strcmp(k, "nvlink_tx_kib")) d->nvlink_tx_kib = (long long)n;
    else if (!strcmp(k, "nvlink_rx_kib")) d->nvlink_rx_kib = (long long)n;
    else if (!strcmp(k, "xid_capable")) d->xid_capable = (int)n;
    else if (!strcmp(k, "xid.count")) { d->nxid = (int)n; if (d->nxid > MAX_XID) d->nxid = MAX_XID; }
    else if (!strncmp(k, "xid.", 4)) { int j = atoi(k + 4); if (j >= 0 && j < MAX_XID) d->xids[j] = n; }
    else if (!strcmp(k, "gpm")) d->gpm = (int)n;
    else if (!strcmp(k, "gpm_gr")) d->gpm_gr = strtod(v, NULL);
    else if (!strcmp(k, "gpm_sm")) d->gpm_sm = strtod(v, NULL);
    else if (!strcmp(k, "gpm_occ")) d->gpm_occ = strtod(v, NULL);
    else if (!strcmp(k, "gpm_tensor")) d->gpm_tensor = strtod(v, NULL);
    else if (!strcmp(k, "gpm_dram")) d->gpm_dram = strtod(v, NULL);
    else if (!strcmp(k, "gpm_pcie_tx")) d->gpm_pcie_tx = strtod(v, NULL);
    else if (!strcmp(k, "gpm_pcie_rx")) d->gpm_pcie_rx = strtod(v, NULL);
}

static void unset_optional(struct dev *d) {
    d->sm_clock = d->mem_clock = d->mem_temp = d->energy_mj = d->pcie_replay = d->enc_util = d->dec_util = NA;
    d->remap_corr = d->remap_unc = d->remap_pending = d->remap_failure = d->nvlinks = NA;
    d->nvlink_tx_kib = d->nvlink_rx_kib = 0;
}

static void set_proc_field(struct proc *p, const char *k, const char *v) {
    unsigned long long n = strtoull(v, NULL, 10);
    if (!strcmp(k, "pid")) p->pid = (unsigned int)n;
    else if (!strcmp(k, "mem")) p->mem = n;
    else if (!strcmp(k, "sm")) p->sm = (unsigned int)n;
    else if (!strcmp(k, "memutil")) p->memutil = (unsigned int)n;
    else if (!strcmp(k, "gi")) p->gi = (unsigned int)n;
    else if (!strcmp(k, "ci")) p->ci = (unsigned int)n;
}

/* Parses "gpu.I.rest"; returns the pointer to rest and stores I, or NULL when out of range. */
static const char *indexed(const char *key, const char *prefix, int limit, int *idx) {
    size_t n = strlen(prefix);
    if (strncmp(key, prefix, n) != 0) return NULL;
    char *end;
    long i = strtol(key + n, &end, 10);
    if (end == key + n || *end != '.' || i < 0 || i >= limit) return NULL;
    *idx = (int)i;
    return end + 1;
}

static void apply(const char *k, const char *v) {
    int g, j;
    const char *rest;
    if (!strcmp(k, "driver")) { snprintf(driver, sizeof driver, "%s", v); return; }
    if (!strcmp(k, "init_error")) { init_error = code_of(v); return; }
    if (!strcmp(k, "gpu.count")) { ngpus = atoi(v); if (ngpus > MAX_GPUS) ngpus = MAX_GPUS; return; }
    if (!(rest = indexed(k, "gpu.", MAX_GPUS, &g))) return;
    struct dev *d = &gpus[g];
    const char *sub;
    if (!strcmp(rest, "proc.count")) { d->nproc = atoi(v); if (d->nproc > MAX_PROCS) d->nproc = MAX_PROCS; }
    else if (!strcmp(rest, "mig.count")) { d->nmig = atoi(v); if (d->nmig > MAX_MIG) d->nmig = MAX_MIG; }
    else if ((sub = indexed(rest, "proc.", MAX_PROCS, &j))) set_proc_field(&d->procs[j], sub, v);
    else if ((sub = indexed(rest, "mig.", MAX_MIG, &j))) set_dev_field(&migs[g][j], sub, v);
    else set_dev_field(d, rest, v);
}

/* Re-reads the state file when it changed. Called with the lock held. */
static void reload(void) {
    const char *path = getenv("FAKE_NVML_STATE");
    struct stat st;
    if (!path || stat(path, &st) != 0) return;
    if (loaded && st.st_ino == last_st.st_ino && st.st_size == last_st.st_size &&
        st.st_mtim.tv_sec == last_st.st_mtim.tv_sec && st.st_mtim.tv_nsec == last_st.st_mtim.tv_nsec) return;
    FILE *f = fopen(path, "r");
    if (!f) return;
    memset(gpus, 0, sizeof gpus);
    memset(migs, 0, sizeof migs);
    ngpus = 0; init_error = 0;
    for (int i = 0; i < MAX_GPUS; i++) {
        gpus[i].procutil = 1;
        unset_optional(&gpus[i]);
        for (int m = 0; m < MAX_MIG; m++) unset_optional(&migs[i][m]);
    }
    char line[512];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        char *eq = strchr(line, '=');
        if (!eq || line[0] == '#') continue;
        *eq = 0;
        apply(line, eq + 1);
    }
    fclose(f);
    for (int g = 0; g < MAX_GPUS; g++)
        for (int m = 0; m < MAX_MIG; m++) { migs[g][m].is_mig = 1; migs[g][m].parent = g; }
    last_st = st;
    loaded = 1;
}

/* Every device entry point: lock, refresh, check the handle; the matching unlock is in the callers. */
static int enter(void *handle, struct dev **out) {
    pthread_mutex_lock(&lock);
    if (!initialized) return ERR_UNINITIALIZED;
    reload();
    struct dev *d = handle;
    int ok_gpu = d >= &gpus[0] && d < &gpus[ngpus];
    int ok_mig = (char *)d >= (char *)&migs[0][0] && (char *)d < (char *)migs + sizeof migs;
    if (!ok_gpu && !ok_mig) return ERR_INVALID_ARGUMENT;
    if (ok_mig && (d->parent >= ngpus || (d - &migs[d->parent][0]) >= gpus[d->parent].nmig))
        return ERR_INVALID_ARGUMENT;
    *out = d;
    int err = ok_mig ? gpus[d->parent].error : d->error;
    return err;
}

#define DEVICE_CALL(handle, d)                                      \
    struct dev *d = NULL;                                           \
    int rc_ = enter((handle), &d);                                  \
    if (rc_ != OK) { pthread_mutex_unlock(&lock); return rc_; }

#define DONE(rc) do { pthread_mutex_unlock(&lock); return (rc); } while (0)

int nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    pthread_mutex_lock(&lock);
    reload();
    if (init_error) DONE(init_error);
    initialized = 1;
    DONE(OK);
}
int nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
int nvmlInit(void) { return nvmlInitWithFlags(0); }
int nvmlShutdown(void) { pthread_mutex_lock(&lock); initialized = 0; DONE(OK); }

const char *nvmlErrorString(int rc) {
    switch (rc) {
    case OK: return "Success";
    case ERR_UNINITIALIZED: return "Uninitialized";
    case ERR_INVALID_ARGUMENT: return "Invalid Argument";
    case ERR_NOT_SUPPORTED: return "Not Supported";
    case ERR_NO_PERMISSION: return "Insufficient Permissions";
    case ERR_NOT_FOUND: return "Not Found";
    case ERR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case ERR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case ERR_TIMEOUT: return "Timeout";
    case ERR_GPU_IS_LOST: return "GPU is lost";
    case ERR_RESET_REQUIRED: return "GPU requires restart";
    case ERR_LIB_RM_VERSION_MISMATCH: return "RM has detected an NVML/RM version mismatch.";
    default: return "Unknown Error";
    }
}

int nvmlSystemGetDriverVersion(char *buf, unsigned int len) {
    pthread_mutex_lock(&lock);
    if (!initialized) DONE(ERR_UNINITIALIZED);
    reload();
    if (strlen(driver) + 1 > len) DONE(ERR_INSUFFICIENT_SIZE);
    snprintf(buf, len, "%s", driver);
    DONE(OK);
}

int nvmlDeviceGetCount_v2(unsigned int *count) {
    pthread_mutex_lock(&lock);
    if (!initialized) DONE(ERR_UNINITIALIZED);
    reload();
    *count = (unsigned int)ngpus;
    DONE(OK);
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int index, void **handle) {
    pthread_mutex_lock(&lock);
    if (!initialized) DONE(ERR_UNINITIALIZED);
    reload();
    if (index >= (unsigned int)ngpus) DONE(ERR_INVALID_ARGUMENT);
    *handle = &gpus[index];
    DONE(OK);
}

static int copy_str(char *buf, unsigned int len, const char *s) {
    if (strlen(s) + 1 > len) return ERR_INSUFFICIENT_SIZE;
    snprintf(buf, len, "%s", s);
    return OK;
}

int nvmlDeviceGetUUID(void *h, char *buf, unsigned int len) { DEVICE_CALL(h, d); DONE(copy_str(buf, len, d->uuid)); }
int nvmlDeviceGetName(void *h, char *buf, unsigned int len) { DEVICE_CALL(h, d); DONE(copy_str(buf, len, d->name)); }

int nvmlDeviceGetIndex(void *h, unsigned int *index) {
    DEVICE_CALL(h, d);
    if (d->is_mig) DONE(ERR_NOT_SUPPORTED);
    *index = (unsigned int)(d - &gpus[0]);
    DONE(OK);
}

int nvmlDeviceGetUtilizationRates(void *h, nvmlUtilization_t *u) {
    DEVICE_CALL(h, d);
    if (d->is_mig) DONE(ERR_NOT_SUPPORTED);   /* like real NVML: no utilization counters per MIG device */
    u->gpu = d->util;
    u->memory = d->memutil;
    DONE(OK);
}

int nvmlDeviceGetMemoryInfo(void *h, nvmlMemory_t *m) {
    DEVICE_CALL(h, d);
    m->total = d->mem_total;
    m->used = d->mem_used;
    m->free = d->mem_total > d->mem_used ? d->mem_total - d->mem_used : 0;
    DONE(OK);
}

int nvmlDeviceGetMemoryInfo_v2(void *h, nvmlMemory_v2_t *m) {
    DEVICE_CALL(h, d);
    m->total = d->mem_total;
    m->reserved = d->mem_reserved;
    m->used = d->mem_used;
    m->free = d->mem_total > d->mem_used + d->mem_reserved ? d->mem_total - d->mem_used - d->mem_reserved : 0;
    DONE(OK);
}

int nvmlDeviceGetPowerUsage(void *h, unsigned int *mw) {
    DEVICE_CALL(h, d);
    if (d->is_mig) DONE(ERR_NOT_SUPPORTED);
    *mw = d->power_mw;
    DONE(OK);
}

int nvmlDeviceGetTemperature(void *h, int sensor, unsigned int *t) {
    DEVICE_CALL(h, d);
    if (sensor != 0 || d->is_mig) DONE(ERR_NOT_SUPPORTED);
    *t = d->temp;
    DONE(OK);
}

/* The processes on a MIG device are the parent's processes in that GPU/compute instance. */
static int running_procs(void *h, unsigned int *count, nvmlProcessInfo_t *out) {
    DEVICE_CALL(h, d);
    struct dev *g = d->is_mig ? &gpus[d->parent] : d;
    unsigned int n = 0;
    for (int i = 0; i < g->nproc; i++)
        if (!d->is_mig || (g->procs[i].gi == d->gi && g->procs[i].ci == d->ci)) n++;
    if (out == NULL || *count < n) {
        unsigned int had = out == NULL ? 0 : *count;
        *count = n;
        DONE(n == 0 && had == 0 ? OK : ERR_INSUFFICIENT_SIZE);
    }
    unsigned int k = 0;
    for (int i = 0; i < g->nproc; i++) {
        struct proc *p = &g->procs[i];
        if (d->is_mig && !(p->gi == d->gi && p->ci == d->ci)) continue;
        out[k].pid = p->pid;
        out[k].usedGpuMemory = p->mem;
        out[k].gpuInstanceId = g->nmig ? p->gi : 0xFFFFFFFFu;
        out[k].computeInstanceId = g->nmig ? p->ci : 0xFFFFFFFFu;
        k++;
    }
    *count = k;
    DONE(OK);
}
int nvmlDeviceGetComputeRunningProcesses_v3(void *h, unsigned int *c, nvmlProcessInfo_t *o) { return running_procs(h, c, o); }
int nvmlDeviceGetComputeRunningProcesses_v2(void *h, unsigned int *c, nvmlProcessInfo_t *o) { return running_procs(h, c, o); }

int nvmlDeviceGetProcessUtilization(void *h, nvmlProcessUtilizationSample_t *out, unsigned int *count,
                                    unsigned long long lastSeen) {
    DEVICE_CALL(h, d);
    if (d->is_mig || !d->procutil || d->nmig) DONE(ERR_NOT_SUPPORTED);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    unsigned long long now = (unsigned long long)tv.tv_sec * 1000000ULL + (unsigned long long)tv.tv_usec;
    /* Real NVML returns the samples newer than lastSeen; the fake's samples are always "now". */
    unsigned int n = lastSeen >= now ? 0 : (unsigned int)d->nproc;
    if (n == 0) DONE(ERR_NOT_FOUND);
    if (out == NULL || *count < n) { *count = n; DONE(ERR_INSUFFICIENT_SIZE); }
    for (unsigned int i = 0; i < n; i++) {
        out[i].pid = d->procs[i].pid;
        out[i].timeStamp = now;
        out[i].smUtil = d->procs[i].sm;
        out[i].memUtil = d->procs[i].memutil;
        out[i].encUtil = 0;
        out[i].decUtil = 0;
    }
    *count = n;
    DONE(OK);
}

int nvmlDeviceGetMigMode(void *h, unsigned int *current, unsigned int *pending) {
    DEVICE_CALL(h, d);
    if (d->is_mig || !(d->mig_capable || d->nmig)) DONE(ERR_NOT_SUPPORTED);
    *current = *pending = d->nmig ? 1 : 0;
    DONE(OK);
}

int nvmlDeviceGetMaxMigDeviceCount(void *h, unsigned int *count) {
    DEVICE_CALL(h, d);
    if (d->is_mig) DONE(ERR_NOT_SUPPORTED);
    *count = (unsigned int)d->nmig;
    DONE(OK);
}

int nvmlDeviceGetMigDeviceHandleByIndex(void *h, unsigned int index, void **mig) {
    DEVICE_CALL(h, d);
    if (d->is_mig || !d->nmig) DONE(ERR_NOT_SUPPORTED);
    if (index >= (unsigned int)d->nmig) DONE(ERR_NOT_FOUND);
    *mig = &migs[d - &gpus[0]][index];
    DONE(OK);
}

int nvmlDeviceIsMigDeviceHandle(void *h, unsigned int *is_mig) {
    DEVICE_CALL(h, d);
    *is_mig = (unsigned int)d->is_mig;
    DONE(OK);
}

int nvmlDeviceGetGpuInstanceId(void *h, unsigned int *id) {
    DEVICE_CALL(h, d);
    if (!d->is_mig) DONE(ERR_NOT_SUPPORTED);
    *id = d->gi;
    DONE(OK);
}

int nvmlDeviceGetComputeInstanceId(void *h, unsigned int *id) {
    DEVICE_CALL(h, d);
    if (!d->is_mig) DONE(ERR_NOT_SUPPORTED);
    *id = d->ci;
    DONE(OK);
}

int nvmlDeviceGetDeviceHandleFromMigDeviceHandle(void *h, void **parent) {
    DEVICE_CALL(h, d);
    if (!d->is_mig) DONE(ERR_NOT_SUPPORTED);
    *parent = &gpus[d->parent];
    DONE(OK);
}

/* ---- hardware fields beyond utilization: absent keys answer NOT_SUPPORTED --------------------------- */

#define OPTIONAL(value) do { if ((value) == NA) DONE(ERR_NOT_SUPPORTED); } while (0)

int nvmlDeviceGetPciInfo_v3(void *h, nvmlPciInfo_t *p) {
    DEVICE_CALL(h, d);
    if (d->is_mig) DONE(ERR_NOT_SUPPORTED);
    unsigned int bus = 0x07 + (unsigned int)(d - &gpus[0]);
    memset(p, 0, sizeof *p);
    if (d->pci_bus_id[0]) snprintf(p->busId, sizeof p->busId, "%s", d->pci_bus_id);
    else snprintf(p->busId, sizeof p->busId, "00000000:%02X:00.0", bus);
    snprintf(p->busIdLegacy, sizeof p->busIdLegacy, "%s", p->busId + 4);
    p->bus = bus;
    p->pciDeviceId = 0x20B210DE;
    DONE(OK);
}

int nvmlDeviceGetClockInfo(void *h, int type, unsigned int *mhz) {
    DEVICE_CALL(h, d);
    long long v = d->is_mig ? NA : type == 1 ? d->sm_clock : type == 2 ? d->mem_clock : NA;
    OPTIONAL(v);
    *mhz = (unsigned int)v;
    DONE(OK);
}

int nvmlDeviceGetTotalEnergyConsumption(void *h, unsigned long long *mj) {
    DEVICE_CALL(h, d);
    OPTIONAL(d->energy_mj);
    *mj = (unsigned long long)d->energy_mj;
    DONE(OK);
}

int nvmlDeviceGetPcieReplayCounter(void *h, unsigned int *n) {
    DEVICE_CALL(h, d);
    OPTIONAL(d->pcie_replay);
    *n = (unsigned int)d->pcie_replay;
    DONE(OK);
}

static int codec_util(void *h, int enc, unsigned int *util, unsigned int *period) {
    DEVICE_CALL(h, d);
    long long v = enc ? d->enc_util : d->dec_util;
    OPTIONAL(v);
    *util = (unsigned int)v;
    *period = 167000;
    DONE(OK);
}
int nvmlDeviceGetEncoderUtilization(void *h, unsigned int *u, unsigned int *p) { return codec_util(h, 1, u, p); }
int nvmlDeviceGetDecoderUtilization(void *h, unsigned int *u, unsigned int *p) { return codec_util(h, 0, u, p); }

int nvmlDeviceGetRemappedRows(void *h, unsigned int *corr, unsigned int *unc, unsigned int *pending,
                              unsigned int *failure) {
    DEVICE_CALL(h, d);
    OPTIONAL(d->remap_corr);
    *corr = (unsigned int)d->remap_corr;
    *unc = d->remap_unc == NA ? 0 : (unsigned int)d->remap_unc;
    *pending = d->remap_pending == NA ? 0 : (unsigned int)d->remap_pending;
    *failure = d->remap_failure == NA ? 0 : (unsigned int)d->remap_failure;
    DONE(OK);
}

/* Field IDs (nvml.h): 82 memory temperature, 83 total energy, 91 NVLink link count, 94 PCIe replays,
 * 138/139 NVLink data throughput TX/RX in KiB for the link in scopeId. */
int nvmlDeviceGetFieldValues(void *h, int count, nvmlFieldValue_t *values) {
    DEVICE_CALL(h, d);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    for (int i = 0; i < count; i++) {
        nvmlFieldValue_t *f = &values[i];
        long long v = NA;
        switch (f->fieldId) {
        case 82: v = d->mem_temp; break;
        case 83: v = d->energy_mj; break;
        case 91: v = d->nvlinks; break;
        case 94: v = d->pcie_replay; break;
        case 138: case 139:
            if (d->nvlinks != NA && f->scopeId < (unsigned int)d->nvlinks)
                v = f->fieldId == 138 ? d->nvlink_tx_kib : d->nvlink_rx_kib;
            break;
        }
        f->timestamp = (long long)tv.tv_sec * 1000000LL + tv.tv_usec;
        f->latencyUsec = 0;
        f->valueType = 3; /* unsigned long long */
        f->nvmlReturn = v == NA ? ERR_NOT_SUPPORTED : OK;
        f->value.ullVal = v == NA ? 0 : (unsigned long long)v;
    }
    DONE(OK);
}

/* ---- events: XIDs ------------------------------------------------------------------------------------ */

struct evset { int registered[MAX_GPUS]; int delivered[MAX_GPUS]; };

int nvmlEventSetCreate(struct evset **set) {
    pthread_mutex_lock(&lock);
    if (!initialized) DONE(ERR_UNINITIALIZED);
    *set = calloc(1, sizeof **set);
    DONE(*set ? OK : ERR_UNKNOWN);
}

int nvmlEventSetFree(struct evset *set) { free(set); return OK; }

int nvmlDeviceRegisterEvents(void *h, unsigned long long types, struct evset *set) {
    DEVICE_CALL(h, d);
    if (d->is_mig || !d->xid_capable || !(types & 8ULL)) DONE(ERR_NOT_SUPPORTED);
    int g = (int)(d - &gpus[0]);
    set->registered[g] = 1;
    set->delivered[g] = d->nxid; /* like NVML: only events after registration are delivered */
    DONE(OK);
}

int nvmlEventSetWait_v2(struct evset *set, nvmlEventData_t *data, unsigned int timeout_ms) {
    (void)timeout_ms;
    pthread_mutex_lock(&lock);
    if (!initialized) DONE(ERR_UNINITIALIZED);
    reload();
    for (int g = 0; g < ngpus; g++) {
        if (!set->registered[g] || gpus[g].error) continue;
        if (set->delivered[g] > gpus[g].nxid) set->delivered[g] = gpus[g].nxid;
        if (set->delivered[g] < gpus[g].nxid) {
            data->device = &gpus[g];
            data->eventType = 8ULL;
            data->eventData = gpus[g].xids[set->delivered[g]++];
            data->gpuInstanceId = data->computeInstanceId = 0xFFFFFFFFu;
            DONE(OK);
        }
    }
    DONE(ERR_TIMEOUT);
}

/* ---- GPM (Hopper and later): samples hold which device (or MIG instance) they were taken on ----------- */

struct gpm_sample { struct dev *d; int taken; };

int nvmlGpmQueryDeviceSupport(void *h, nvmlGpmSupport_t *s) {
    DEVICE_CALL(h, d);
    if (s->version != 1) DONE(ERR_INVALID_ARGUMENT);
    s->isSupportedDevice = d->is_mig ? 0 : (unsigned int)d->gpm;
    DONE(OK);
}

int nvmlGpmSampleAlloc(struct gpm_sample **s) {
    *s = calloc(1, sizeof **s);
    return *s ? OK : ERR_UNKNOWN;
}

int nvmlGpmSampleFree(struct gpm_sample *s) { free(s); return OK; }

int nvmlGpmSampleGet(void *h, struct gpm_sample *s) {
    DEVICE_CALL(h, d);
    if (d->is_mig || !d->gpm) DONE(ERR_NOT_SUPPORTED);
    s->d = d;
    s->taken = 1;
    DONE(OK);
}

int nvmlGpmMigSampleGet(void *h, unsigned int gi, struct gpm_sample *s) {
    DEVICE_CALL(h, d);
    if (d->is_mig || !d->gpm || !d->nmig) DONE(ERR_NOT_SUPPORTED);
    int g = (int)(d - &gpus[0]);
    for (int m = 0; m < d->nmig; m++)
        if (migs[g][m].gi == gi) { s->d = &migs[g][m]; s->taken = 1; DONE(OK); }
    DONE(ERR_NOT_FOUND);
}

int nvmlGpmMetricsGet(nvmlGpmMetricsGet_t *mg) {
    pthread_mutex_lock(&lock);
    if (!initialized) DONE(ERR_UNINITIALIZED);
    reload();
    struct gpm_sample *a = mg->sample1, *b = mg->sample2;
    if (mg->version != 1) DONE(ERR_INVALID_ARGUMENT);
    if (!a || !b || !a->taken || !b->taken || a->d != b->d) DONE(ERR_INVALID_ARGUMENT);
    struct dev *d = a->d;
    for (unsigned int i = 0; i < mg->numMetrics; i++) {
        nvmlGpmMetric_t *m = &mg->metrics[i];
        m->nvmlReturn = OK;
        m->metricInfo.shortName = m->metricInfo.longName = m->metricInfo.unit = NULL;
        switch (m->metricId) {
        case 1: m->value = d->gpm_gr; break;
        case 2: m->value = d->gpm_sm; break;
        case 3: m->value = d->gpm_occ; break;
        case 5: m->value = d->gpm_tensor; break;
        case 10: m->value = d->gpm_dram; break;
        case 20: m->value = d->is_mig ? 0 : d->gpm_pcie_tx; if (d->is_mig) m->nvmlReturn = ERR_NOT_SUPPORTED; break;
        case 21: m->value = d->is_mig ? 0 : d->gpm_pcie_rx; if (d->is_mig) m->nvmlReturn = ERR_NOT_SUPPORTED; break;
        default: m->value = 0; m->nvmlReturn = ERR_NOT_SUPPORTED;
        }
    }
    DONE(OK);
}
