package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procCPU reads CPU accounting: the server's (and the upstream's) own from
// /proc/<pid>/stat, this process's from getrusage, and the whole machine's
// from /proc/stat, so a segment can say how much of the machine went to
// other work than the benchmark.
type procCPU struct {
	server, upstream string // /proc/<pid>/stat paths; upstream may be empty
	tick             time.Duration
}

func newProcCPU(pid, upstreamPid, clkTck int) (*procCPU, error) {
	if clkTck <= 0 {
		return nil, fmt.Errorf("clock ticks per second must be positive, got %d", clkTck)
	}
	p := &procCPU{server: statPath(pid), tick: time.Second / time.Duration(clkTck)}
	if upstreamPid > 0 {
		p.upstream = statPath(upstreamPid)
	}
	if _, err := p.sample(); err != nil {
		return nil, err
	}
	return p, nil
}

func statPath(pid int) string { return "/proc/" + strconv.Itoa(pid) + "/stat" }

// cpuSample is cumulative CPU time at one instant.
type cpuSample struct {
	server, upstream, self, machineBusy time.Duration
}

// cpuUsage is CPU over an interval, in cores (CPU seconds per second).
type cpuUsage struct {
	server, upstream, self, others float64
}

func (b cpuSample) since(a cpuSample, wall time.Duration) cpuUsage {
	w := wall.Seconds()
	u := cpuUsage{
		server:   (b.server - a.server).Seconds() / w,
		upstream: (b.upstream - a.upstream).Seconds() / w,
		self:     (b.self - a.self).Seconds() / w,
	}
	u.others = max(0, (b.machineBusy-a.machineBusy).Seconds()/w-u.server-u.upstream-u.self)
	return u
}

func (p *procCPU) sample() (cpuSample, error) {
	var s cpuSample
	var err error
	if s.server, err = p.procTime(p.server); err != nil {
		return s, err
	}
	if p.upstream != "" {
		if s.upstream, err = p.procTime(p.upstream); err != nil {
			return s, err
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return s, fmt.Errorf("getrusage: %w", err)
	}
	s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	s.machineBusy, err = p.machineBusy()
	return s, err
}

// procTime is user+system time of all threads of a process.
func (p *procCPU) procTime(path string) (time.Duration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read CPU time: %w", err)
	}
	// The command name is in parentheses and may hold spaces; the fields
	// after it start at field 3 (state), so utime (14) and stime (15) are
	// the 12th and 13th.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: unexpected format", path)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: only %d fields", path, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: utime %q stime %q are not numbers", path, f[11], f[12])
	}
	return time.Duration(utime+stime) * p.tick, nil
}

// machineBusy is all CPUs' non-idle time from the first line of /proc/stat.
func (p *procCPU) machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("read machine CPU time: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var busy int64
	// user nice system idle iowait irq softirq steal: all but idle and iowait.
	for i, v := range f[1:9] {
		if i == 3 || i == 4 {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: field %q is not a number", v)
		}
		busy += n
	}
	return time.Duration(busy) * p.tick, nil
}
