package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenauthz/tokenauthz/internal/testtools"
)

// redisServer is a redis-server process for the shared-cache benchmarks,
// persistence off, and a client to it.
type redisServer struct {
	proc     *proc
	addr     string
	keysFile string // a keys_file with one random key
	client   *redis.Client
}

// startRedis runs redis-server (.tools/bin, as scripts/tools.sh installs
// it, or $TOKENAUTHZ_REDIS_SERVER, or PATH) on a free loopback port.
func startRedis(ctx context.Context, dir string) (*redisServer, error) {
	bin, err := testtools.Find("redis-server", "TOKENAUTHZ_REDIS_SERVER")
	if err != nil {
		return nil, fmt.Errorf("redis-server: %w (run scripts/tools.sh redis)", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	p, err := startProc(ctx, dir, "redis", procOptions{}, bin, "--bind", "127.0.0.1", "--port", port,
		"--save", "", "--appendonly", "no", "--dir", dir, "--protected-mode", "no")
	if err != nil {
		return nil, err
	}
	r := &redisServer{proc: p, addr: addr, keysFile: filepath.Join(dir, "cache-keys"),
		client: redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})}
	deadline := time.Now().Add(10 * time.Second)
	for r.client.Ping(ctx).Err() != nil {
		if time.Now().After(deadline) {
			r.Close()
			return nil, fmt.Errorf("redis-server not answering on %s (log: %s)", addr, p.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(r.keysFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// block is cache.shared for tokenauthz, as a YAML flow mapping.
func (r *redisServer) block() string {
	return fmt.Sprintf("{addresses: [%q], keys_file: %q}", r.addr, r.keysFile)
}

// Flush empties Redis between runs, so each starts cold.
func (r *redisServer) Flush(ctx context.Context) error { return r.client.FlushAll(ctx).Err() }

// BytesPerEntry is Redis's own MEMORY USAGE of the entries it holds,
// averaged (lock keys aside: they live a fetch long), and how many.
func (r *redisServer) BytesPerEntry(ctx context.Context) (float64, int, error) {
	keys, err := r.client.Keys(ctx, "*").Result()
	if err != nil {
		return 0, 0, err
	}
	var total int64
	n := 0
	for _, k := range keys {
		if strings.HasSuffix(k, ".lock") {
			continue
		}
		b, err := r.client.MemoryUsage(ctx, k).Result()
		if err != nil {
			return 0, 0, err
		}
		total += b
		n++
	}
	if n == 0 {
		return 0, 0, nil
	}
	return float64(total) / float64(n), n, nil
}

// UsedMemory is used_memory from INFO memory.
func (r *redisServer) UsedMemory(ctx context.Context) (int64, error) {
	info, err := r.client.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("INFO memory: no used_memory")
}

func (r *redisServer) Close() {
	r.client.Close()
	r.proc.Stop()
}
