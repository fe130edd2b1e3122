// A kubelet stand-in in Go: kubelet's CSI client is grpc-go, and its cost per call is not
// grpcio's (a C core under a Python asyncio layer). bench/go_kubelet.py drives this program
// over pipes and reads back the time each call took inside it.
//
// Flag -per-call: as kubelet's CSI client (pkg/volume/csi/csi_client.go), every call on a new
// connection (newGrpcConn: dialled without blocking, closed after the call), and every
// NodePublishVolume preceded by the NodeGetCapabilities kubelet's NodePublishVolume makes on a
// connection of its own (to map the access mode). Without it, one connection made at start
// serves every call and no call is added.
//
// stdin, one call per line: "<full method> <request, protobuf, base64>". stdout, one line per
// call: "<call ns> <step ns> OK <reply, protobuf, base64>" or "<call ns> <step ns> ERR <status
// text>": the call alone, and kubelet's whole step (with the capability call, when made).
//
// Messages stay encoded: the Python side builds and parses them, so this program needs no
// generated CSI code, only grpc-go (Debian's golang-google-grpc-dev, GOPATH mode).
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
)

const (
	publishMethod      = "/csi.v1.Node/NodePublishVolume"
	capabilitiesMethod = "/csi.v1.Node/NodeGetCapabilities"
)

// rawCodec passes already-encoded protobuf bytes through, under the name "proto" so the
// content-type on the wire is the one kubelet sends (application/grpc).
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) { return *(v.(*[]byte)), nil }

func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

func dialUnix(ctx context.Context, path string) (net.Conn, error) {
	var dialer net.Dialer
	return dialer.DialContext(ctx, "unix", path)
}

// dial connects as kubelet does: insecure, over the unix socket, authority "localhost".
func dial(ctx context.Context, path string, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	options := append([]grpc.DialOption{
		grpc.WithInsecure(), grpc.WithAuthority("localhost"), grpc.WithContextDialer(dialUnix),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})),
	}, extra...)
	return grpc.DialContext(ctx, path, options...)
}

// invoke makes one call: on shared, or on a connection of its own when shared is nil.
func invoke(shared *grpc.ClientConn, path, method string, request []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := shared
	if conn == nil {
		own, err := dial(ctx, path)
		if err != nil {
			return nil, err
		}
		defer own.Close()
		conn = own
	}
	var reply []byte
	err := conn.Invoke(ctx, method, &request, &reply)
	return reply, err
}

// step makes one call as kubelet's step would (see the file's comment); the call's time and
// the step's, in ns.
func step(shared *grpc.ClientConn, path string, perCall bool, method string, request []byte) (
	int64, int64, []byte, error,
) {
	began := time.Now()
	if perCall && method == publishMethod {
		if _, err := invoke(nil, path, capabilitiesMethod, []byte{}); err != nil {
			elapsed := time.Since(began).Nanoseconds()
			return 0, elapsed, nil, err
		}
	}
	started := time.Now()
	reply, err := invoke(shared, path, method, request)
	return time.Since(started).Nanoseconds(), time.Since(began).Nanoseconds(), reply, err
}

func main() {
	perCall := flag.Bool("per-call", false, "a new connection per call, as kubelet")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: kubelet-go [-per-call] <csi socket path>")
		os.Exit(2)
	}
	path := flag.Arg(0)
	var shared *grpc.ClientConn
	if !*perCall {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		conn, err := dial(ctx, path, grpc.WithBlock())
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "connect:", err)
			os.Exit(1)
		}
		defer conn.Close()
		shared = conn
	}
	lines := bufio.NewScanner(os.Stdin)
	lines.Buffer(make([]byte, 1<<16), 1<<24)
	out := bufio.NewWriter(os.Stdout)
	for lines.Scan() {
		method, encoded, found := strings.Cut(lines.Text(), " ")
		request, err := base64.StdEncoding.DecodeString(encoded)
		if !found || err != nil {
			fmt.Fprintln(os.Stderr, "bad command line")
			os.Exit(2)
		}
		call, whole, reply, err := step(shared, path, *perCall, method, request)
		if err != nil {
			text := strings.ReplaceAll(err.Error(), "\n", " ")
			fmt.Fprintf(out, "%d %d ERR %s\n", call, whole, text)
		} else {
			encoded := base64.StdEncoding.EncodeToString(reply)
			fmt.Fprintf(out, "%d %d OK %s\n", call, whole, encoded)
		}
		out.Flush()
	}
}
