// Command catalog-query asks a running catalog (opm serve) what OLM would
// ask it, over the real gRPC API, and prints the answers as JSON: every
// package with its channels and default channel, and the bundle
// GetBundleForChannel returns for each channel. End-to-end tests compare
// that with the filtered model Ferry built.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/operator-framework/operator-registry/pkg/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

type channel struct {
	Name   string `json:"name"`
	Head   string `json:"head"`
	Bundle string `json:"bundle"` // csvName GetBundleForChannel returns
}

type pkg struct {
	Name           string    `json:"name"`
	DefaultChannel string    `json:"defaultChannel"`
	Channels       []channel `json:"channels"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:50051", "catalog gRPC address")
	timeout := flag.Duration("timeout", 60*time.Second, "overall timeout, including waiting for the server")
	flag.Parse()
	if err := run(*addr, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "catalog-query:", err)
		os.Exit(1)
	}
}

func run(addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := api.NewRegistryClient(conn)
	var names []string
	for {
		names, err = listPackages(ctx, client)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("list packages: %w", err)
		case <-time.After(200 * time.Millisecond): // the server may still be starting
		}
	}
	sort.Strings(names)
	out := []pkg{}
	for _, n := range names {
		p, err := client.GetPackage(ctx, &api.GetPackageRequest{Name: n})
		if err != nil {
			return fmt.Errorf("get package %s: %w", n, err)
		}
		rp := pkg{Name: p.Name, DefaultChannel: p.DefaultChannelName}
		for _, c := range p.Channels {
			b, err := client.GetBundleForChannel(ctx, &api.GetBundleInChannelRequest{PkgName: n, ChannelName: c.Name})
			if err != nil {
				return fmt.Errorf("get bundle for %s/%s: %w", n, c.Name, err)
			}
			rp.Channels = append(rp.Channels, channel{Name: c.Name, Head: c.CsvName, Bundle: b.CsvName})
		}
		sort.Slice(rp.Channels, func(i, j int) bool { return rp.Channels[i].Name < rp.Channels[j].Name })
		out = append(out, rp)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func listPackages(ctx context.Context, c api.RegistryClient) ([]string, error) {
	stream, err := c.ListPackages(ctx, &api.ListPackageRequest{})
	if err != nil {
		return nil, err
	}
	var names []string
	for {
		p, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return names, nil
		}
		if err != nil {
			return nil, err
		}
		names = append(names, p.Name)
	}
}
