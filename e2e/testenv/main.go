package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gitorc/gitorc/cluster/agent/containerd/imagetest"
)

func main() {
	dir := flag.String("dir", "", "directory for the registry's storage (required)")
	addrFile := flag.String("addr-file", "", "write the registry address (host:port) here once it serves")
	flag.Parse()
	if err := run(*dir, *addrFile); err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		os.Exit(1)
	}
}

func run(dir, addrFile string) error {
	if dir == "" {
		return fmt.Errorf("-dir is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	reg, err := imagetest.StartBusyboxRegistry(ctx, filepath.Join(dir, "registry"), "127.0.0.1", []string{"sh"}, 30*time.Second)
	if err != nil {
		return err
	}
	defer reg.Stop()
	ref := reg.Addr + "/" + imagetest.BusyboxRepo + ":" + imagetest.BusyboxTag
	if addrFile != "" {
		if err := os.WriteFile(addrFile+".tmp", []byte(reg.Addr+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.Rename(addrFile+".tmp", addrFile); err != nil {
			return err
		}
	}
	fmt.Printf("registry %s serves %s\n", reg.Addr, ref)
	<-ctx.Done()
	return nil
}
