package app

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/tokenauthz/tokenauthz/config"
)

// reloadDebounce groups the burst of events one save makes (editors write,
// rename and chmod; Kubernetes swaps a symlink) into one reload.
const reloadDebounce = 200 * time.Millisecond

// Reload loads the file at path and, if it is valid, makes it the
// configuration of every check that starts from now on. An invalid file is
// rejected as a whole and the running configuration keeps serving. Cached
// tokens survive: the cache is keyed by the settings, not by the file.
// listen, cache and token_request settings keep their startup values.
// Either outcome logs one line.
func (a *App) Reload(path string) error { return a.reload(path, "call", nil) }

// reload is Reload; trigger (sighup, file, call) says in the log what caused
// it. override, when set, applies the command line to the file as at startup,
// so that a flag does not read as a listen change waiting for a restart.
func (a *App) reload(path, trigger string, override func(*config.Config)) error {
	cfg, err := config.Load(path)
	if err == nil && override != nil {
		override(cfg)
	}
	a.metrics.ObserveReload(err)
	a.status.ObserveLoad(trigger, err)
	if err != nil {
		a.log.Error("config reload rejected; the previous configuration keeps serving", "config", path, "trigger", trigger, "err", err)
		return err
	}
	old := a.Authz.Config()
	level, attrs := slog.LevelInfo, []any{"config", path, "trigger", trigger, "services", len(cfg.Routes.Services())}
	if cfg.Listen != old.Listen || !cfg.Cache.Equal(old.Cache) || cfg.TokenRequest.Timeout != old.TokenRequest.Timeout ||
		cfg.TokenRequest.CAFile != old.TokenRequest.CAFile || cfg.TokenRequest.MaxInFlight != old.TokenRequest.MaxInFlight {
		level, attrs = slog.LevelWarn, append(attrs, "ignored_until_restart", "listen, cache and token_request settings change only on restart")
	}
	a.rotateKeys(cfg) // keys_file is re-read on reload; the rest of cache waits for a restart
	cfg.Listen, cfg.Cache, cfg.TokenRequest = old.Listen, old.Cache, old.TokenRequest
	a.discovery.Track(a.ctx, Issuers(cfg))
	a.Authz.Reload(cfg)
	a.syncHealth() // the new config's issuers may not be discovered yet
	a.log.Log(context.Background(), level, "config reloaded", attrs...)
	a.prewarm(cfg)
	logWarnings(a.log, cfg)
	return nil
}

// WatchConfig reloads path on SIGHUP, and when the file's content changes
// (fsnotify on its folder, so replaced files and swapped symlinks count),
// until the app stops. If the folder cannot be watched, SIGHUP still works
// and the error says why files are not watched. override (nil: none) is what
// the command line sets over each file, as it did at startup.
func (a *App) WatchConfig(path string, override func(*config.Config)) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	var events <-chan fsnotify.Event
	var errs <-chan error
	w, err := fsnotify.NewWatcher()
	if err == nil {
		if err = w.Add(filepath.Dir(path)); err == nil {
			events, errs = w.Events, w.Errors
		} else {
			w.Close()
		}
	}
	last, _ := os.ReadFile(path)
	go func() {
		if events != nil {
			defer w.Close()
		}
		defer signal.Stop(hup)
		debounce := time.NewTimer(time.Hour)
		debounce.Stop()
		for {
			select {
			case <-a.ctx.Done():
				return
			case <-hup:
				if a.reload(path, "sighup", override) == nil {
					last, _ = os.ReadFile(path)
				}
			case <-events:
				debounce.Reset(reloadDebounce)
			case err := <-errs:
				a.log.Warn("config watch", "err", err)
			case <-debounce.C:
				data, err := os.ReadFile(path)
				if err != nil || bytes.Equal(data, last) {
					continue // mid-swap, or another file in the folder changed
				}
				last = data
				a.reload(path, "file", override)
			}
		}
	}()
	return err
}
