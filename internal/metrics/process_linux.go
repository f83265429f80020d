package metrics

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"syscall"
)

// userHZ is the unit of the times in /proc (sysconf(_SC_CLK_TCK)), 100 on
// every Linux that matters; client_golang assumes it too.
const userHZ = 100

// RegisterProcess registers the process series, named as client_golang's
// process collector names them, read from getrusage, getrlimit and /proc at
// scrape time.
func (r *Registry) RegisterProcess() {
	r.valueFunc("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", func(*scrape) float64 {
		var ru syscall.Rusage
		if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
			return 0
		}
		return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	})
	r.valueFunc("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", func(s *scrape) float64 {
		return float64(s.statm()[1]) * float64(os.Getpagesize())
	})
	r.valueFunc("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", func(s *scrape) float64 {
		return float64(s.statm()[0]) * float64(os.Getpagesize())
	})
	r.valueFunc("process_open_fds", "gauge", "Number of open file descriptors.", func(*scrape) float64 {
		d, err := os.Open("/proc/self/fd")
		if err != nil {
			return 0
		}
		defer d.Close()
		names, _ := d.Readdirnames(-1)
		return float64(len(names))
	})
	r.valueFunc("process_max_fds", "gauge", "Maximum number of open file descriptors.", func(*scrape) float64 {
		return rlimit(syscall.RLIMIT_NOFILE)
	})
	r.valueFunc("process_virtual_memory_max_bytes", "gauge", "Maximum amount of virtual memory available in bytes.", func(*scrape) float64 {
		return rlimit(syscall.RLIMIT_AS)
	})
	start := sync.OnceValue(processStart)
	r.valueFunc("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", func(*scrape) float64 {
		return start()
	})
}

func rlimit(resource int) float64 {
	var l syscall.Rlimit
	if syscall.Getrlimit(resource, &l) != nil {
		return 0
	}
	return float64(l.Cur)
}

// statm returns the first two fields of /proc/self/statm: virtual and
// resident size in pages (zeros if unreadable).
func (s *scrape) statm() *[2]uint64 {
	if s.pages == nil {
		s.pages = new([2]uint64)
		if b, err := os.ReadFile("/proc/self/statm"); err == nil {
			f := bytes.Fields(b)
			for i := 0; i < 2 && i < len(f); i++ {
				s.pages[i], _ = strconv.ParseUint(string(f[i]), 10, 64)
			}
		}
	}
	return s.pages
}

// processStart reads the process's start time: field 22 of
// /proc/self/stat (clock ticks since boot) plus the boot time from
// /proc/stat.
func processStart() float64 {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold
	// anything: the first of them is field 3.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 20 {
		return 0
	}
	ticks, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return 0
	}
	all, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	for line := range bytes.SplitSeq(all, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			boot, err := strconv.ParseUint(string(bytes.TrimSpace(rest)), 10, 64)
			if err != nil {
				return 0
			}
			return float64(boot) + float64(ticks)/userHZ
		}
	}
	return 0
}
