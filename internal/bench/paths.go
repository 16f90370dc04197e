package bench

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"kdsrv/internal/client"
	"kdsrv/internal/kd"
	"kdsrv/internal/logx"
	"kdsrv/internal/netem"
	"kdsrv/internal/server"
	"kdsrv/internal/sim"
	"kdsrv/internal/spec"
	"kdsrv/internal/targetlink"
)

// setupTimeout bounds connecting, opening and attaching one session.
const setupTimeout = 60 * time.Second

// serverPorts is the port range the in-process kdsrv listens in.
const serverPorts = "tcp:port=40000:49999"

// simTarget is one simulated machine serving debuggers on a unix socket,
// as a virtual machine's serial pipe does.
type simTarget struct {
	sim    *sim.Machine
	path   string
	ln     net.Listener
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startSim(dir, name string, dataSize uint64) (*simTarget, error) {
	path := filepath.Join(dir, name+".sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("simulated target %s: %w", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	st := &simTarget{sim: sim.New(sim.Config{DataSize: dataSize}), path: path, ln: ln, cancel: cancel}
	st.wg.Add(1)
	go func() {
		defer st.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = st.sim.Serve(ctx, c) // one debugger at a time, like a serial line
		}
	}()
	return st, nil
}

// Close stops serving and waits for the target's goroutines.
func (st *simTarget) Close() {
	st.cancel()
	st.ln.Close()
	st.wg.Wait()
}

// session is a debugger attached to a target through one path.
type session struct {
	host   *kd.Host
	bridge *client.Bridge // kdsrv paths
	close  func()
}

// opener connects a debugger to st through a path.
type opener func(ctx context.Context, dir string, st *simTarget) (*session, error)

// openDirect attaches the debugger to the target's pipe itself: the local
// baseline, no network in between.
func openDirect() opener {
	return func(ctx context.Context, _ string, st *simTarget) (*session, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", st.path)
		if err != nil {
			return nil, fmt.Errorf("direct: %w", err)
		}
		l := kd.NewHostLink(c, kd.Config{})
		return &session{host: kd.NewHost(l, kd.HostOptions{}), close: func() { l.Close() }}, nil
	}
}

// openByteRelay puts a dumb byte relay next to the target (in-process, or
// socat when socatPath is set) and the WAN between it and the debugger.
func openByteRelay(wan netem.Profile, socatPath string) opener {
	return func(ctx context.Context, _ string, st *simTarget) (*session, error) {
		var relayAddr string
		var stopRelay func()
		var err error
		if socatPath != "" {
			relayAddr, stopRelay, err = startSocat(ctx, socatPath, st.path)
		} else {
			relayAddr, stopRelay, err = startRelay(st.path)
		}
		if err != nil {
			return nil, err
		}
		px, err := netem.NewProxy("127.0.0.1:0", relayAddr, wan)
		if err != nil {
			stopRelay()
			return nil, err
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", px.Addr())
		if err != nil {
			px.Close()
			stopRelay()
			return nil, fmt.Errorf("byte relay: %w", err)
		}
		l := kd.NewHostLink(c, kd.Config{})
		return &session{host: kd.NewHost(l, kd.HostOptions{}), close: func() {
			l.Close()
			px.Close()
			stopRelay()
		}}, nil
	}
}

// startRelay runs a socat-like TCP → unix socket byte copier.
func startRelay(target string) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("byte relay: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			var d net.Dialer
			u, err := d.DialContext(ctx, "unix", target)
			if err != nil {
				c.Close()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = netem.Relay(ctx, c, u)
			}()
		}
	}()
	return ln.Addr().String(), func() {
		cancel()
		ln.Close()
		wg.Wait()
	}, nil
}

// startSocat runs socat as the byte relay on a free loopback port.
func startSocat(ctx context.Context, socatPath, target string) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(socatPath, "TCP-LISTEN:"+strconv.Itoa(port)+",bind=127.0.0.1,reuseaddr,fork", "UNIX-CONNECT:"+target)
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("socat: %w", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	stop = func() {
		_ = cmd.Process.Kill()
		<-waited
	}
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for range 100 {
		var d net.Dialer
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := d.DialContext(dctx, "tcp", addr)
		cancel()
		if err == nil {
			c.Close() // socat forks a copier for it and drops it
			return addr, stop, nil
		}
		select {
		case err := <-waited:
			waited <- err
			stop()
			return "", nil, fmt.Errorf("socat exited at start: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	stop()
	return "", nil, fmt.Errorf("socat did not listen on %s within 2s", addr)
}

// inProcessServer is a kdsrv in this process that may open the simulated
// targets under dir.
type inProcessServer struct {
	srv    *server.Server
	served chan error
}

func startServer(dir string) (*inProcessServer, error) {
	tr, err := spec.ParseServerTransport(serverPorts)
	if err != nil {
		return nil, err
	}
	allow, err := targetlink.NewAllowList([]string{filepath.Join(dir, "*.sock")}, false)
	if err != nil {
		return nil, err
	}
	cfg := server.Config{
		Transports: []*spec.Transport{tr},
		Allow:      allow,
		Logger:     logx.Discard(),
	}
	cfg.Listen.BindHost = "127.0.0.1"
	srv, err := server.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := srv.Listen(context.Background()); err != nil {
		return nil, fmt.Errorf("in-process kdsrv: %w", err)
	}
	s := &inProcessServer{srv: srv, served: make(chan error, 1)}
	go func() { s.served <- srv.Serve() }()
	return s, nil
}

func (s *inProcessServer) addr() string { return s.srv.Addrs()[0].String() }

func (s *inProcessServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	<-s.served
}

// openKdsrv runs a kdsrv next to the target and a kdclient bridge on the
// debugger's side, with the WAN between them.
func openKdsrv(wan netem.Profile, opts client.SessionOptions) opener {
	return func(ctx context.Context, dir string, st *simTarget) (*session, error) {
		s, err := startServer(dir)
		if err != nil {
			return nil, err
		}
		addr := s.addr()
		var px *netem.Proxy
		if wan != (netem.Profile{}) {
			px, err = netem.NewProxy("127.0.0.1:0", addr, wan)
			if err != nil {
				s.stop()
				return nil, err
			}
			addr = px.Addr()
		}
		stopAll := func() {
			if px != nil {
				px.Close()
			}
			s.stop()
		}
		cs, err := openClient(ctx, addr, st.path, opts)
		if err != nil {
			stopAll()
			return nil, err
		}
		inner := cs.close
		cs.close = func() {
			inner()
			stopAll()
		}
		return cs, nil
	}
}

// openClient connects a kdclient bridge with an in-process debugger to the
// kdsrv at addr and opens the target pipe at path, with the session
// options given (read-ahead, the halted-target cache).
func openClient(ctx context.Context, addr, path string, opts client.SessionOptions) (*session, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	c, err := spec.ParseConnect(fmt.Sprintf("kdsrv:server=@{tcp:server=%s,port=%s},trans=@{com:pipe,port=%s}", host, port, path))
	if err != nil {
		return nil, err
	}
	cs, err := client.OpenSession(ctx, c, client.Options{Logger: logx.Discard()}, opts)
	if err != nil {
		return nil, err
	}
	h, stopHost := cs.Host(kd.HostOptions{})
	return &session{host: h, bridge: cs.Bridge, close: func() {
		stopHost()
		cs.Close() // detaches first, as kdclient does
	}}, nil
}

// runPath measures one path against a fresh simulated target.
func runPath(ctx context.Context, dir, name string, open opener, w workload) *PathResult {
	res := &PathResult{}
	var errs errorList
	defer func() {
		res.Errors = errs.n
		res.FirstError = errs.text()
	}()
	st, err := startSim(dir, name, max(16<<20, uint64(w.dump)+dumpOffset+sim.PageSize))
	if err != nil {
		errs.add(err)
		return res
	}
	defer st.Close()
	sctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	sess, err := open(sctx, dir, st)
	if err != nil {
		errs.add(fmt.Errorf("%s: connecting: %w", name, err))
		return res
	}
	defer sess.close()
	if _, err := sess.host.Attach(sctx); err != nil {
		errs.add(fmt.Errorf("%s: attaching: %w", name, err))
		return res
	}
	tBefore := st.sim.Stats().Link
	dBefore := sess.host.Link().Stats()
	w.run(ctx, sess, res, &errs)
	tAfter := st.sim.Stats().Link
	dAfter := sess.host.Link().Stats()
	res.TargetRetransmits = tAfter.Retransmits - tBefore.Retransmits
	res.TargetResyncs = (tAfter.ResendsReceived + tAfter.ResetsReceived + tAfter.Corrupt) -
		(tBefore.ResendsReceived + tBefore.ResetsReceived + tBefore.Corrupt)
	res.DebuggerRetransmits = dAfter.Retransmits - dBefore.Retransmits
	if sess.bridge != nil {
		st := sess.bridge.ReadAheadStats()
		res.BridgeHits = st.Hits + st.Early
	}
	return res
}
