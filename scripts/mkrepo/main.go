// Command mkrepo builds a signed TUF repository archive for tests and
// benchmarks, and writes the root.json that trusts it.
//
//	mkrepo -out repo.zip -root root.json -system-version 1.0.0 \
//	    -artifact zone1=build/zone1.tar.gz -artifact host:phase1@2.0.0=build/phase1.img \
//	    -random-size 1GiB -format zip -store
//
// Each -artifact is [kind:]name[@version]=path: kind defaults to name,
// version to -system-version, and the target is named after the file.
// -random-size adds a target "random.bin" of pseudo-random bytes (artifact
// "random", kind "random"). Content is streamed from disk or generated while
// the archive is written, so memory stays flat whatever the sizes; each file
// is read twice (once to hash it, once to write it).
package main

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"depot/tuf/tuftest"
)

type artifactFlags []string

func (a *artifactFlags) String() string     { return strings.Join(*a, ",") }
func (a *artifactFlags) Set(v string) error { *a = append(*a, v); return nil }

func main() {
	var (
		out        = flag.String("out", "repo.zip", "archive to write")
		rootOut    = flag.String("root", "root.json", "trusted root.json to write")
		sysVersion = flag.String("system-version", "1.0.0", "system_version of artifacts.json")
		randomSize = flag.String("random-size", "", "add a pseudo-random target of this size (e.g. 1GiB, 512MiB, 1000000)")
		seed       = flag.Uint64("seed", 1, "seed of the random target")
		format     = flag.String("format", "zip", "archive format: zip, tar, tar.gz or tar.zst")
		store      = flag.Bool("store", false, "store zip entries uncompressed")
		keyType    = flag.String("key-type", "ed25519", "signing keys: ed25519 or ecdsa")
		plain      = flag.Bool("plain", false, "plain TUF layout (metadata/, targets/, no consistent snapshots) instead of tufaceous")
		artifacts  artifactFlags
	)
	flag.Var(&artifacts, "artifact", "[kind:]name[@version]=path, repeatable")
	flag.Parse()
	if flag.NArg() != 0 {
		fail(fmt.Errorf("unexpected arguments %q", flag.Args()))
	}
	if err := run(*out, *rootOut, *sysVersion, *randomSize, *seed, tuftest.Format(*format), *store,
		tuftest.KeyType(*keyType), *plain, artifacts); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mkrepo:", err)
	os.Exit(1)
}

func run(out, rootOut, sysVersion, randomSize string, seed uint64, format tuftest.Format, store bool,
	keyType tuftest.KeyType, plain bool, artifacts []string) error {
	switch format {
	case tuftest.Zip, tuftest.Tar, tuftest.TarGz, tuftest.TarZst:
	default:
		return fmt.Errorf("unknown -format %q", format)
	}
	if keyType != tuftest.ED25519 && keyType != tuftest.ECDSA {
		return fmt.Errorf("unknown -key-type %q", keyType)
	}
	opts := []tuftest.Option{tuftest.WithKeyType(keyType)}
	if plain {
		opts = append(opts, tuftest.WithPlainLayout())
	}
	b := tuftest.NewBuilder(nil, opts...)

	var manifest []tuftest.Artifact
	seen := map[string]bool{}
	for _, spec := range artifacts {
		a, path, err := parseArtifact(spec, sysVersion)
		if err != nil {
			return err
		}
		if seen[a.Target] {
			return fmt.Errorf("-artifact %q: a target named %q exists already", spec, a.Target)
		}
		seen[a.Target] = true
		n, sum, err := hashFile(path)
		if err != nil {
			return err
		}
		b.AddTargetReader(tuftest.Targets, a.Target, n, sum, func() io.Reader {
			f, err := os.Open(path)
			if err != nil {
				return errReader{err}
			}
			return f // the builder closes it
		})
		manifest = append(manifest, a)
	}
	if randomSize != "" {
		n, err := parseSize(randomSize)
		if err != nil {
			return err
		}
		if seen["random.bin"] {
			return errors.New(`-random-size: a target named "random.bin" exists already`)
		}
		open, sum := tuftest.RandomTarget(seed, n)
		b.AddTargetReader(tuftest.Targets, "random.bin", n, sum, open)
		manifest = append(manifest, tuftest.Artifact{Name: "random", Version: sysVersion, Kind: "random", Target: "random.bin"})
	}
	b.SetManifest(sysVersion, manifest)

	if err := writeFile(out, func(w io.Writer) error { return b.WriteArchive(w, format, store) }); err != nil {
		return err
	}
	root := b.RootJSON()
	return writeFile(rootOut, func(w io.Writer) error { _, err := w.Write(root); return err })
}

// parseArtifact parses [kind:]name[@version]=path.
func parseArtifact(spec, sysVersion string) (tuftest.Artifact, string, error) {
	lhs, path, ok := strings.Cut(spec, "=")
	if !ok || lhs == "" || path == "" {
		return tuftest.Artifact{}, "", fmt.Errorf("-artifact %q: want [kind:]name[@version]=path", spec)
	}
	kind, name, hasKind := strings.Cut(lhs, ":")
	if !hasKind {
		name = kind
	}
	name, version, hasVersion := strings.Cut(name, "@")
	if !hasVersion {
		version = sysVersion
	}
	if !hasKind {
		kind = name
	}
	if name == "" || kind == "" || version == "" {
		return tuftest.Artifact{}, "", fmt.Errorf("-artifact %q: empty kind, name or version", spec)
	}
	return tuftest.Artifact{Name: name, Version: version, Kind: kind, Target: filepath.Base(path)}, path, nil
}

// parseSize parses "1GiB", "512MiB", "10KiB", "1GB", "100MB", "1G" or bytes.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1},
	}
	mult := int64(1)
	num := strings.TrimSpace(s)
	for _, u := range units {
		if v, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(v), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

func hashFile(path string) (int64, [32]byte, error) {
	var sum [32]byte
	f, err := os.Open(path)
	if err != nil {
		return 0, sum, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, sum, fmt.Errorf("read %s: %w", path, err)
	}
	h.Sum(sum[:0])
	return n, sum, nil
}

// writeFile writes name through a temporary file renamed into place, so a
// failed run leaves no half-written archive behind.
func writeFile(name string, write func(io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	w := bufio.NewWriterSize(tmp, 1<<20)
	if err := write(w); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Chmod(0o644); err != nil { // CreateTemp makes 0600
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
