package metrics

import (
	"runtime"
	"runtime/debug"
	"time"
)

// memStats reads the runtime's memory statistics once per scrape.
// runtime.ReadMemStats rather than runtime/metrics: that package's
// initialisation is part of the start-up cost this package avoids.
func (s *scrape) memStats() *runtime.MemStats {
	if s.mem == nil {
		s.mem = new(runtime.MemStats)
		runtime.ReadMemStats(s.mem)
	}
	return s.mem
}

// valueFunc registers a family of one unlabelled sample computed at scrape
// time.
func (r *Registry) valueFunc(name, typ, help string, f func(*scrape) float64) {
	r.register(&family{name: name, help: help, typ: typ, write: func(b []byte, s *scrape) []byte {
		return appendSample(b, name, "", f(s))
	}})
}

// RegisterGo registers the Go runtime series, named as client_golang's Go
// collector names them (a subset: those runtime.ReadMemStats and
// debug.ReadGCStats answer).
func (r *Registry) RegisterGo() {
	gauge := func(name, help string, f func(*runtime.MemStats) uint64) {
		r.valueFunc(name, "gauge", help, func(s *scrape) float64 { return float64(f(s.memStats())) })
	}
	counter := func(name, help string, f func(*runtime.MemStats) uint64) {
		r.valueFunc(name, "counter", help, func(s *scrape) float64 { return float64(f(s.memStats())) })
	}
	r.valueFunc("go_goroutines", "gauge", "Number of goroutines that currently exist.",
		func(*scrape) float64 { return float64(runtime.NumGoroutine()) })
	r.valueFunc("go_threads", "gauge", "Number of OS threads created.",
		func(*scrape) float64 { n, _ := runtime.ThreadCreateProfile(nil); return float64(n) })
	r.valueFunc("go_sched_gomaxprocs_threads", "gauge", "The current runtime.GOMAXPROCS setting, or the number of operating system threads that can execute user-level Go code simultaneously.",
		func(*scrape) float64 { return float64(runtime.GOMAXPROCS(0)) })
	r.valueFunc("go_gc_gomemlimit_bytes", "gauge", "Go runtime memory limit configured by the user, otherwise math.MaxInt64.",
		func(*scrape) float64 { return float64(debug.SetMemoryLimit(-1)) }) // a negative limit only reads it
	info := `version="` + string(appendEscaped(nil, runtime.Version(), true)) + `"`
	r.register(&family{name: "go_info", help: "Information about the Go environment.", typ: "gauge",
		write: func(b []byte, _ *scrape) []byte { return appendSample(b, "go_info", info, 1) }})
	r.register(&family{name: "go_gc_duration_seconds", help: "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.", typ: "summary",
		write: func(b []byte, _ *scrape) []byte {
			st := debug.GCStats{PauseQuantiles: make([]time.Duration, 5)}
			debug.ReadGCStats(&st)
			for i, q := range []string{"0", "0.25", "0.5", "0.75", "1"} {
				b = appendSample(b, "go_gc_duration_seconds", `quantile="`+q+`"`, st.PauseQuantiles[i].Seconds())
			}
			b = appendSample(b, "go_gc_duration_seconds_sum", "", st.PauseTotal.Seconds())
			return appendSample(b, "go_gc_duration_seconds_count", "", float64(st.NumGC))
		}})
	r.valueFunc("go_memstats_last_gc_time_seconds", "gauge", "Number of seconds since 1970 of last garbage collection.",
		func(s *scrape) float64 { return float64(s.memStats().LastGC) / 1e9 })

	gauge("go_memstats_alloc_bytes", "Number of bytes allocated in heap and currently in use.", func(m *runtime.MemStats) uint64 { return m.Alloc })
	counter("go_memstats_alloc_bytes_total", "Total number of bytes allocated in heap until now, even if released already.", func(m *runtime.MemStats) uint64 { return m.TotalAlloc })
	gauge("go_memstats_buck_hash_sys_bytes", "Number of bytes used by the profiling bucket hash table.", func(m *runtime.MemStats) uint64 { return m.BuckHashSys })
	counter("go_memstats_frees_total", "Total number of heap objects frees.", func(m *runtime.MemStats) uint64 { return m.Frees })
	gauge("go_memstats_gc_sys_bytes", "Number of bytes used for garbage collection system metadata.", func(m *runtime.MemStats) uint64 { return m.GCSys })
	gauge("go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and currently in use, same as go_memstats_alloc_bytes.", func(m *runtime.MemStats) uint64 { return m.HeapAlloc })
	gauge("go_memstats_heap_idle_bytes", "Number of heap bytes waiting to be used.", func(m *runtime.MemStats) uint64 { return m.HeapIdle })
	gauge("go_memstats_heap_inuse_bytes", "Number of heap bytes that are in use.", func(m *runtime.MemStats) uint64 { return m.HeapInuse })
	gauge("go_memstats_heap_objects", "Number of currently allocated objects.", func(m *runtime.MemStats) uint64 { return m.HeapObjects })
	gauge("go_memstats_heap_released_bytes", "Number of heap bytes released to OS.", func(m *runtime.MemStats) uint64 { return m.HeapReleased })
	gauge("go_memstats_heap_sys_bytes", "Number of heap bytes obtained from system.", func(m *runtime.MemStats) uint64 { return m.HeapSys })
	counter("go_memstats_mallocs_total", "Total number of heap objects allocated, both live and gc-ed.", func(m *runtime.MemStats) uint64 { return m.Mallocs })
	gauge("go_memstats_mcache_inuse_bytes", "Number of bytes in use by mcache structures.", func(m *runtime.MemStats) uint64 { return m.MCacheInuse })
	gauge("go_memstats_mcache_sys_bytes", "Number of bytes used for mcache structures obtained from system.", func(m *runtime.MemStats) uint64 { return m.MCacheSys })
	gauge("go_memstats_mspan_inuse_bytes", "Number of bytes in use by mspan structures.", func(m *runtime.MemStats) uint64 { return m.MSpanInuse })
	gauge("go_memstats_mspan_sys_bytes", "Number of bytes used for mspan structures obtained from system.", func(m *runtime.MemStats) uint64 { return m.MSpanSys })
	gauge("go_memstats_next_gc_bytes", "Number of heap bytes when next garbage collection will take place.", func(m *runtime.MemStats) uint64 { return m.NextGC })
	gauge("go_memstats_other_sys_bytes", "Number of bytes used for other system allocations.", func(m *runtime.MemStats) uint64 { return m.OtherSys })
	gauge("go_memstats_stack_inuse_bytes", "Number of bytes in use by the stack allocator.", func(m *runtime.MemStats) uint64 { return m.StackInuse })
	gauge("go_memstats_stack_sys_bytes", "Number of bytes obtained from system for stack allocator.", func(m *runtime.MemStats) uint64 { return m.StackSys })
	gauge("go_memstats_sys_bytes", "Number of bytes obtained from system.", func(m *runtime.MemStats) uint64 { return m.Sys })
}
