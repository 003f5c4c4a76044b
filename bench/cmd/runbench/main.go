// Command runbench runs the Go benchmarks of every core package once, pairs
// each BenchmarkX with its BenchmarkXFloor (measured in the same run, on the
// same machine) and writes a markdown table of results and ratios.
//
// Speed goals live here, never in unit tests: a goal is a ratio to a floor or
// an absolute rate, checked against numbers from this run only.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// goal says what a benchmark must reach. MaxRatio bounds ns/op against the
// floor; MinRate bounds a reported rate metric (e.g. "events/s").
type goal struct {
	MaxRatio float64
	Metric   string
	MinRate  float64
	// MaxMetric, when set, bounds Metric from above (e.g. a p50 latency).
	MaxMetric float64
	Text      string
}

var goals = map[string]goal{
	"DeliverEcho64":          {Metric: "events/s", MinRate: 2e6, Text: "≥ 2 M events/s on one core"},
	"Handshake":              {MaxRatio: 1.5, Text: "≤ 1.5× in-process handshake"},
	"Throughput1K":           {MaxRatio: 2.0, Text: "≥ 50% of raw seal+open (≤ 2× its time)"},
	"SealOpen1K":             {MaxRatio: 1.5, Text: "wire cipher ≤ 1.5× raw AEAD"},
	"Migrate1KiB":            {MaxRatio: 3, Text: "≤ 3× floor"},
	"Migrate64KiB":           {MaxRatio: 3, Text: "≤ 3× floor"},
	"Migrate1MiB":            {MaxRatio: 3, Text: "≤ 3× floor; p50 < 20 ms"},
	"Migrate16MiB":           {MaxRatio: 3, Text: "≤ 3× floor"},
	"DeliverDuringMigration": {Text: "events/s during a migration vs outside one (the issue sets no goal)"},
}

type result struct {
	pkg, name string
	nsop      float64
	allocs    string
	metrics   map[string]float64
}

var line = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+(\d+)\s+([\d.]+) ns/op(.*)$`)

func main() {
	out := flag.String("out", "bench/RESULTS.md", "markdown file to write")
	pkgs := flag.String("pkgs", "./core/...", "packages to benchmark")
	benchtime := flag.String("benchtime", "1s", "go test -benchtime")
	extra := flag.String("extra", "", "file with extra markdown (e.g. the C benchmark table) to append")
	flag.Parse()

	args := []string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-count", "1", "-benchtime", *benchtime}
	args = append(args, strings.Fields(*pkgs)...)
	cmd := exec.Command("go", args...)
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = os.Stderr
	err := cmd.Run()
	os.Stdout.Write(buf.Bytes())
	if err != nil {
		fmt.Fprintln(os.Stderr, "runbench: go test failed:", err)
		os.Exit(1)
	}

	results := map[string]*result{}
	var order []string
	pkg := ""
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		t := sc.Text()
		if strings.HasPrefix(t, "pkg: ") {
			pkg = strings.TrimPrefix(t, "pkg: ")
			continue
		}
		m := line.FindStringSubmatch(t)
		if m == nil {
			continue
		}
		ns, _ := strconv.ParseFloat(m[3], 64)
		r := &result{pkg: pkg, name: m[1], nsop: ns, metrics: map[string]float64{}}
		f := strings.Fields(m[4])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			if f[i+1] == "allocs/op" {
				r.allocs = f[i]
			}
			r.metrics[f[i+1]] = v
		}
		results[r.name] = r
		order = append(order, r.name)
	}

	var md strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&md, "# Benchmark results\n\nWritten by `make bench` on %s (%s, %d CPUs, %s). Floors are measured in the same run; compare ratios, not absolute numbers, on this noisy 2-core VM.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), host, runtime.NumCPU(), runtime.Version())
	md.WriteString("| benchmark | package | ns/op | ops/s | allocs/op | floor ns/op | ratio | goal | met |\n|---|---|---:|---:|---:|---:|---:|---|---|\n")
	sort.SliceStable(order, func(i, j int) bool { return results[order[i]].pkg < results[order[j]].pkg })
	failed := 0
	for _, name := range order {
		if strings.HasSuffix(name, "Floor") || strings.Contains(name, "Floor/") {
			continue
		}
		r := results[name]
		base := strings.SplitN(name, "/", 2)[0]
		floorName := base + "Floor"
		if i := strings.IndexByte(name, '/'); i >= 0 {
			floorName = base + "Floor" + name[i:]
		}
		floorCol, ratioCol := "", ""
		ratio := 0.0
		if f, ok := results[floorName]; ok && f.nsop > 0 {
			ratio = r.nsop / f.nsop
			floorCol = fmt.Sprintf("%.1f", f.nsop)
			ratioCol = fmt.Sprintf("%.2f×", ratio)
			// Latency benchmarks report their median; a goal on latency is
			// judged on medians, so one stalled iteration cannot decide it.
			if a, b := r.metrics["p50-ms"], f.metrics["p50-ms"]; a > 0 && b > 0 {
				ratio = a / b
				ratioCol = fmt.Sprintf("%.2f× (p50 %.3g / %.3g ms)", ratio, a, b)
			}
		}
		g, hasGoal := goals[base]
		goalCol, met := "", ""
		if hasGoal {
			goalCol = g.Text
			ok := true
			if g.MaxRatio > 0 && ratio > 0 {
				ok = ok && ratio <= g.MaxRatio
			}
			if g.MaxMetric > 0 {
				v, have := r.metrics[g.Metric]
				goalCol += fmt.Sprintf(" (measured %.3g %s)", v, g.Metric)
				ok = ok && have && v < g.MaxMetric
			}
			if g.MinRate > 0 {
				v, have := r.metrics[g.Metric]
				goalCol += fmt.Sprintf(" (measured %.3g %s)", v, g.Metric)
				ok = ok && have && v >= g.MinRate
			}
			met = "yes"
			if !ok {
				met = "**no**"
				failed++
			}
		}
		short := strings.TrimPrefix(r.pkg, "github.com/netmesh/libnetmesh/")
		fmt.Fprintf(&md, "| %s | %s | %.1f | %.3g | %s | %s | %s | %s | %s |\n", name, short, r.nsop, 1e9/r.nsop, r.allocs, floorCol, ratioCol, goalCol, met)
	}
	if *extra != "" {
		if b, err := os.ReadFile(*extra); err == nil {
			md.WriteString("\n")
			md.Write(b)
		}
	}
	fmt.Fprintf(&md, "\nGoals missed in this run: %d.\n", failed)
	if err := os.WriteFile(*out, []byte(md.String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "runbench:", err)
		os.Exit(1)
	}
	fmt.Printf("runbench: wrote %s (%d results, %d goals missed)\n", *out, len(order), failed)
}
