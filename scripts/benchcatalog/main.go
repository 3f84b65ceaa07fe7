// Command benchcatalog measures the coordinator's catalog: operations per
// second and latency on the bbolt file against a 3-member etcd cluster on
// loopback (members embedded, fsync on, as bbolt's commits), with 1 and 8
// concurrent clients; then failover: SIGKILL of the leading depotd
// coordinator until another one's replication status says leading, and
// until its next activation starts.
//
//	go run ./scripts/benchcatalog -depotd ./depotd [-rounds 3] [-seconds 2] [-failovers 5]
//
// Rounds alternate the backends; each figure is the median over rounds
// with min-max. The machine is shared: the load average is printed.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"depot/depot"
	"depot/depot/etcdlocal"
	"depot/store"
)

func main() {
	depotd := flag.String("depotd", "", "depotd binary, for the failover runs (none: skip them)")
	rounds := flag.Int("rounds", 3, "rounds of every catalog measure")
	seconds := flag.Float64("seconds", 2, "length of one measure")
	failovers := flag.Int("failovers", 5, "leader kills")
	ttl := flag.Duration("ttl", 10*time.Second, "--coordinator-ttl of the failover coordinators")
	dir := flag.String("dir", os.TempDir(), "where catalogs and etcd data go")
	only := flag.String("only", "", "ops or failover (default both)")
	flag.Parse()
	work, err := os.MkdirTemp(*dir, "benchcatalog-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(work)
	fmt.Printf("load average at start: %s\n", loadavg())
	if *only != "failover" {
		if err := ops(work, *rounds, time.Duration(*seconds*float64(time.Second))); err != nil {
			fail(err)
		}
	}
	if *only != "ops" && *depotd != "" {
		if err := failover(work, *depotd, *failovers, *ttl); err != nil {
			fail(err)
		}
	}
	fmt.Printf("load average at end: %s\n", loadavg())
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchcatalog:", err)
	os.Exit(1)
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// op is one catalog operation by client c, its i-th.
type op struct {
	name string
	fn   func(cat *depot.Catalog, c, i int) error
}

func digest(s string) store.Digest { return store.Digest(sha256.Sum256([]byte(s))) }

func repo(version string, n int) depot.Repo {
	r := depot.Repo{Hash: digest("archive" + version), SystemVersion: version, FileName: version + ".zip", TimeCreated: time.Now().UTC()}
	for j := range n {
		r.Artifacts = append(r.Artifacts, depot.RepoArtifact{Name: fmt.Sprintf("a%d", j), Version: version, Kind: "zone",
			Hash: digest(fmt.Sprintf("%s/%d", version, j)), Size: 1 << 20})
	}
	return r
}

func audit(a string) *depot.AuditEntry {
	return &depot.AuditEntry{Actor: "token:bench", Action: a, Status: 200}
}

// ops0 are the measured operations. Keys made by one measure are new in
// the next (versions and trust roots carry the client and a counter or
// the time).
var ops0 = []op{
	{"insert+delete repo", func(cat *depot.Catalog, c, i int) error {
		v := fmt.Sprintf("9.%d.%d", c, i)
		if _, ins, _, err := cat.InsertRepo(context.Background(), repo(v, 10), "", audit("repo.insert")); err != nil || !ins {
			return fmt.Errorf("insert %s: %v (inserted %v)", v, err, ins)
		}
		_, _, err := cat.DeleteRepo(context.Background(), v, audit("repo.delete"))
		return err
	}},
	{"add trust root", func(cat *depot.Catalog, c, i int) error {
		doc := fmt.Sprintf(`{"signed":{"_type":"root","n":"%d-%d-%d"}}`, time.Now().UnixNano(), c, i)
		_, _, err := cat.AddTrustRoot(context.Background(), []byte(doc), "api", audit("trust_root.add"))
		return err
	}},
	{"put sled", func(cat *depot.Catalog, c, i int) error {
		_, err := cat.PutSled(context.Background(), depot.SledRecord{ID: fmt.Sprintf("bench%d", c), ControlURL: fmt.Sprintf("http://127.0.0.1:%d", 20000+i%1000)}, audit("sled.put"))
		return err
	}},
	{"append audit", func(cat *depot.Catalog, c, i int) error {
		_, err := cat.AppendAudit(context.Background(), audit("bench.append"))
		return err
	}},
	{"wanted (read)", func(cat *depot.Catalog, c, i int) error {
		w, err := cat.Wanted(context.Background())
		if err == nil && len(w.Sorted()) != 500 {
			err = fmt.Errorf("wanted %d artifacts, want 500", len(w.Sorted()))
		}
		return err
	}},
}

type result struct {
	opsPerSec float64
	p50, p99  time.Duration
}

// measure runs o with clients goroutines for d.
func measure(cat *depot.Catalog, o op, clients int, d time.Duration) (result, error) {
	lat := make([][]time.Duration, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(d)
	for c := range clients {
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				t := time.Now()
				if err := o.fn(cat, c, i); err != nil {
					errs[c] = err
					return
				}
				lat[c] = append(lat[c], time.Since(t))
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return result{}, fmt.Errorf("%s: %w", o.name, err)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		return result{}, fmt.Errorf("%s: no operation finished", o.name)
	}
	return result{opsPerSec: float64(len(all)) / el.Seconds(), p50: all[len(all)/2], p99: all[len(all)*99/100]}, nil
}

func ops(work string, rounds int, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cl, err := etcdlocal.Start(ctx, filepath.Join(work, "etcd-ops"), 3, etcdlocal.Options{})
	cancel()
	if err != nil {
		return err
	}
	defer cl.Close()
	bolt, err := depot.OpenCatalog(filepath.Join(work, "catalog.db"), 0)
	if err != nil {
		return err
	}
	defer bolt.Close()
	etcd, err := depot.OpenEtcdCatalog(context.Background(), depot.EtcdOptions{Endpoints: cl.Endpoints(), Prefix: "/bench/", Timeout: 30 * time.Second})
	if err != nil {
		return err
	}
	defer etcd.Close()
	backends := []struct {
		name string
		cat  *depot.Catalog
	}{{"bbolt", bolt}, {"etcd x3", etcd}}
	// The wanted set read by "wanted": 50 repositories of 10 artifacts.
	for _, b := range backends {
		for i := range 50 {
			if _, _, _, err := b.cat.InsertRepo(context.Background(), repo(fmt.Sprintf("1.0.%d", i), 10), "", nil); err != nil {
				return fmt.Errorf("%s: fill: %w", b.name, err)
			}
		}
	}
	type key struct {
		op, backend string
		clients     int
	}
	res := map[key][]result{}
	for r := range rounds {
		for _, o := range ops0 {
			for _, clients := range []int{1, 8} {
				for bi := range backends {
					b := backends[(bi+r)%len(backends)] // alternate which goes first
					got, err := measure(b.cat, o, clients, d)
					if err != nil {
						return fmt.Errorf("%s: %w", b.name, err)
					}
					k := key{o.name, b.name, clients}
					res[k] = append(res[k], got)
				}
			}
		}
	}
	fmt.Printf("catalog operations, %d rounds of %s each; median ops/s (min-max), median p50 / p99 latency:\n", rounds, d)
	fmt.Printf("%-20s %-8s %-8s %-24s %-22s\n", "operation", "clients", "backend", "ops/s", "p50 / p99")
	for _, o := range ops0 {
		for _, clients := range []int{1, 8} {
			for _, b := range backends {
				rs := res[key{o.name, b.name, clients}]
				var ops []float64
				var p50, p99 []time.Duration
				for _, x := range rs {
					ops = append(ops, x.opsPerSec)
					p50 = append(p50, x.p50)
					p99 = append(p99, x.p99)
				}
				fmt.Printf("%-20s %-8d %-8s %-24s %-22s\n", o.name, clients, b.name,
					fmt.Sprintf("%.0f (%.0f-%.0f)", median(ops), slices.Min(ops), slices.Max(ops)),
					fmt.Sprintf("%s / %s", round(median(p50)), round(median(p99))))
			}
		}
	}
	return nil
}

func median[T float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func round(d time.Duration) time.Duration {
	switch {
	case d > 10*time.Millisecond:
		return d.Round(time.Millisecond)
	case d > 10*time.Microsecond:
		return d.Round(time.Microsecond)
	}
	return d
}

// coordinator is one depotd process of the failover runs.
type coordinator struct {
	id       string
	args     []string
	operator string
	cmd      *exec.Cmd
}

type replStatus struct {
	Leading        bool   `json:"leading"`
	Coordinator    string `json:"coordinator"`
	LastActivation *struct {
		Started time.Time `json:"started"`
	} `json:"last_activation"`
}

func status(cli *http.Client, operator string) (replStatus, error) {
	var s replStatus
	resp, err := cli.Get(operator + "/v1/replication/status")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("status %d", resp.StatusCode)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

func freePorts(n int) ([]int, error) {
	var out []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

func failover(work, depotd string, runs int, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cl, err := etcdlocal.Start(ctx, filepath.Join(work, "etcd-failover"), 3, etcdlocal.Options{})
	cancel()
	if err != nil {
		return err
	}
	defer cl.Close()
	ports, err := freePorts(9)
	if err != nil {
		return err
	}
	var sleds []string
	for i := range 3 {
		sleds = append(sleds, "--sled", fmt.Sprintf("control=http://127.0.0.1:%d,depot=http://127.0.0.1:%d,id=c%d", ports[3*i], ports[3*i+2], i))
	}
	cs := make([]*coordinator, 3)
	for i := range 3 {
		c := &coordinator{id: fmt.Sprintf("c%d", i), operator: fmt.Sprintf("http://127.0.0.1:%d", ports[3*i+1])}
		c.args = append([]string{"--data", filepath.Join(work, c.id), "--catalog", cl.CatalogURL(), "--sled-id", c.id,
			"--coordinator-ttl", ttl.String(), "--replication-period", "1s",
			"--listen", fmt.Sprintf("127.0.0.1:%d", ports[3*i]), "--operator-listen", fmt.Sprintf("127.0.0.1:%d", ports[3*i+1]),
			"--depot-listen", fmt.Sprintf("127.0.0.1:%d", ports[3*i+2])}, sleds...)
		cs[i] = c
	}
	logf, err := os.Create(filepath.Join(work, "coordinators.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	startC := func(c *coordinator) error {
		c.cmd = exec.Command(depotd, c.args...)
		c.cmd.Stdout, c.cmd.Stderr = logf, logf
		return c.cmd.Start()
	}
	defer func() {
		for _, c := range cs {
			if c.cmd != nil && c.cmd.Process != nil {
				c.cmd.Process.Signal(syscall.SIGTERM)
				c.cmd.Wait()
			}
		}
	}()
	for _, c := range cs {
		if err := startC(c); err != nil {
			return err
		}
	}
	cli := &http.Client{Timeout: 2 * time.Second}
	// leader waits until exactly one coordinator leads and every one answers.
	leader := func(deadline time.Duration) (int, error) {
		end := time.Now().Add(deadline)
		for time.Now().Before(end) {
			lead, up := -1, 0
			for i, c := range cs {
				s, err := status(cli, c.operator)
				if err != nil {
					continue
				}
				up++
				if s.Leading {
					lead = i
				}
			}
			if lead >= 0 && up == len(cs) {
				return lead, nil
			}
			time.Sleep(100 * time.Millisecond)
		}
		return -1, errors.New("no leader with every coordinator up")
	}
	var toLead, toAct []float64
	for run := range runs {
		li, err := leader(2 * time.Minute)
		if err != nil {
			return err
		}
		// Let the survivors settle as followers of this leader.
		time.Sleep(2 * time.Second)
		dead := cs[li]
		t0 := time.Now()
		if err := dead.cmd.Process.Kill(); err != nil {
			return err
		}
		dead.cmd.Wait()
		var led, acted time.Duration
		for led == 0 || acted == 0 {
			if time.Since(t0) > 3*ttl+30*time.Second {
				return fmt.Errorf("run %d: no new leader activation %s after the kill", run, time.Since(t0))
			}
			for i, c := range cs {
				if i == li {
					continue
				}
				s, err := status(cli, c.operator)
				if err != nil || !s.Leading {
					continue
				}
				if led == 0 {
					led = time.Since(t0)
				}
				if s.LastActivation != nil && s.LastActivation.Started.After(t0) && acted == 0 {
					acted = s.LastActivation.Started.Sub(t0)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		toLead = append(toLead, led.Seconds())
		toAct = append(toAct, acted.Seconds())
		fmt.Printf("failover %d: killed %s; a new leader after %.2fs, its activation started after %.2fs\n", run+1, dead.id, led.Seconds(), acted.Seconds())
		if err := startC(dead); err != nil {
			return err
		}
	}
	fmt.Printf("failover (SIGKILL of the leading depotd, --coordinator-ttl %s, status polled every 50ms), %d runs: new leader after median %.2fs (%.2f-%.2f); its next activation started after median %.2fs (%.2f-%.2f)\n",
		ttl, runs, median(toLead), slices.Min(toLead), slices.Max(toLead), median(toAct), slices.Min(toAct), slices.Max(toAct))
	return nil
}
