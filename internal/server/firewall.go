package server

import (
	"context"
	"net"
	"time"

	"kdsrv/internal/firewall"
	"kdsrv/internal/spec"
)

// IcfEnable: open the firewall for each transport that asks for it. Like
// the original, the rule stays after kdsrv exits; the log says how to
// remove it. Problems are warnings: the server runs anyway.
func init() {
	registerFeature(feature{name: "IcfEnable", start: startFirewall})
}

// openFirewall is replaced in tests.
var openFirewall = firewall.Open
var openPipesFirewall = firewall.OpenPipes

func startFirewall(ctx context.Context, r *Run) (func(), error) {
	addrs := r.Server.Addrs()
	displays := r.Server.Displays()
	for i, t := range r.Transports {
		if !t.IcfEnable {
			continue
		}
		if t.Reverse() {
			// A reverse server dials out: there is no inbound port to open.
			r.Stderr.Write([]byte("kdsrv: IcfEnable for " + displays[i] + ": nothing to open, kdsrv connects out to the client\n"))
			continue
		}
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		var res firewall.Result
		var err error
		switch t.Proto {
		case spec.NPipe, spec.SPipe:
			res, err = openPipesFirewall(fctx)
		default:
			port := 0
			if ta, ok := addrs[i].(*net.TCPAddr); ok {
				port = ta.Port
			}
			res, err = openFirewall(fctx, firewall.Request{Proto: "tcp", Port: port, Comment: "kdsrv " + displays[i]})
		}
		cancel()
		if err != nil {
			r.Stderr.Write([]byte("kdsrv: warning: IcfEnable for " + displays[i] + ": " + err.Error() + "\n"))
			continue
		}
		r.Stderr.Write([]byte("kdsrv: IcfEnable for " + displays[i] + ": " + res.String() + "\n"))
	}
	return nil, nil
}
