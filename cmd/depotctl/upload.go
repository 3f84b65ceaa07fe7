package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"depot/server/api"
)

// repoWaitPoll is how long each long-poll of a repository's progress may
// last; the server answers earlier, at the first change.
const repoWaitPoll = 30 * time.Second

func (a *app) uploadCmd() *cobra.Command {
	var (
		systemVersion string
		fileName      string
		wait          string
		timeout       time.Duration
	)
	c := &cobra.Command{
		Use:   "upload FILE",
		Short: "Upload a TUF repository archive (FILE, or - for stdin)",
		Long: `Upload streams a TUF repository archive (zip, tar, tar.gz or tar.zst) to
the coordinator, which verifies it against its trust roots, stores its
artifacts and starts replicating them. It prints the repository's system
version and whether it was inserted or already existed.

With --wait it then waits until the repository is durable (every artifact
on the minimum number of sleds), or with --wait=complete until every
in-service sled holds every artifact; --timeout bounds that wait. With
--json and --wait, the upload result and then the final replication
progress are printed as two JSON documents.`,
		Args: exactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			var target string
			switch wait {
			case "":
			case api.RepoDurable, api.RepoComplete:
				target = wait
			default:
				return usagef("--wait=%q: want %q or %q", wait, api.RepoDurable, api.RepoComplete)
			}
			if timeout != 0 && target == "" {
				return usagef("--timeout bounds --wait; give --wait too")
			}
			ctx := cmd.Context()
			res, err := a.upload(ctx, args[0], fileName, systemVersion)
			if err != nil {
				return err
			}
			if a.json {
				if err := writeJSON(a.stdout, res); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(a.stdout, "repository %s: %s (%d artifacts, archive sha256 %s)\n",
					res.Repo.SystemVersion, res.Status, len(res.Repo.Artifacts), res.Repo.Hash)
			}
			if target == "" {
				return nil
			}
			p, err := a.waitRepo(ctx, res.Repo.SystemVersion, target, timeout)
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.stdout, p)
			}
			fmt.Fprintf(a.stdout, "repository %s: %s\n", p.SystemVersion, describeProgress(p))
			return nil
		}),
	}
	f := c.Flags()
	f.StringVar(&systemVersion, "system-version", "", "system version, for a repository without artifacts.json")
	f.StringVar(&fileName, "file-name", "", "file name to record (default: FILE's base name)")
	f.StringVar(&wait, "wait", "", "wait until the repository is durable, or complete with --wait=complete")
	f.Lookup("wait").NoOptDefVal = api.RepoDurable
	f.DurationVar(&timeout, "timeout", 0, "bound the --wait (0: no bound)")
	return c
}

// upload streams the archive at path ("-": stdin) with a progress report.
func (a *app) upload(ctx context.Context, path, fileName, systemVersion string) (api.UploadResult, error) {
	var (
		body io.Reader
		size int64 = -1
	)
	if path == "-" {
		body = a.stdin
		if fileName == "" {
			fileName = "stdin"
		}
	} else {
		f, err := os.Open(path)
		if err != nil {
			return api.UploadResult{}, err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return api.UploadResult{}, err
		}
		if !fi.Mode().IsRegular() {
			return api.UploadResult{}, fmt.Errorf("%s is not a regular file", path)
		}
		body, size = f, fi.Size()
		if fileName == "" {
			fileName = filepath.Base(path)
		}
	}
	p := a.newProgress("upload "+fileName, size)
	p.afterSend = "the daemon is verifying the repository"
	res, err := a.opClient().UploadRepo(ctx, fileName, systemVersion, p.Reader(body), size)
	p.Done(err)
	return res, err
}

// stateRank orders repository states: reaching one reaches those below.
func stateRank(s string) int {
	switch s {
	case api.RepoDurable:
		return 1
	case api.RepoComplete:
		return 2
	}
	return 0
}

// waitRepo long-polls the repository until its state reaches target, or
// timeout (0: none) passes. Each poll returns at the first change of the
// repository's progress, so there is no sleeping here.
func (a *app) waitRepo(ctx context.Context, version, target string, timeout time.Duration) (api.RepoProgress, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	c := a.opClient()
	start := time.Now()
	var (
		p    api.RepoProgress
		last string
		poll time.Duration // 0 first: the current state, without waiting
	)
	for {
		next, err := c.RepoUntil(ctx, version, poll, target)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
				return p, fmt.Errorf("repository %s is not %s after %s (%s)", version, target,
					time.Since(start).Round(time.Second), describeProgress(p))
			}
			return p, err
		}
		p, poll = next, repoWaitPoll
		if line := describeProgress(p); line != last {
			fmt.Fprintf(a.stderr, "waiting for %s: %s\n", target, line)
			last = line
		}
		if stateRank(p.State) >= stateRank(target) {
			return p, nil
		}
	}
}

// describeProgress sums up a repository's replication in a few words:
// "replicating: 1 of 2 artifacts on >= 2 sleds, 0 on all 3".
func describeProgress(p api.RepoProgress) string {
	if p.State == "" {
		return "no progress yet"
	}
	quorum, all := 0, 0
	for _, ap := range p.Artifacts {
		if len(ap.Sleds) >= p.MinReplication {
			quorum++
		}
		if p.InService > 0 && len(ap.Sleds) >= p.InService {
			all++
		}
	}
	return fmt.Sprintf("%s: %d of %d artifacts on >= %d sled(s), %d on all %d in service",
		p.State, quorum, len(p.Artifacts), p.MinReplication, all, p.InService)
}
