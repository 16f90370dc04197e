package wire

import (
	"testing"
)

func BenchmarkAppendFrame(b *testing.B) {
	payload := EncodeKD(2, make([]byte, 1000))
	buf := make([]byte, 0, HeaderSize+len(payload))
	b.ReportAllocs()
	b.SetBytes(int64(HeaderSize + len(payload)))
	for b.Loop() {
		buf = AppendFrame(buf[:0], TypeKD, payload)
	}
}

func BenchmarkDecoder(b *testing.B) {
	for _, size := range []int{16, 1000, 4002} {
		b.Run(sizeName(size), func(b *testing.B) {
			frame := AppendFrame(nil, TypeKD, make([]byte, size))
			d := NewDecoder(&repeatReader{b: frame})
			if _, err := d.Next(); err != nil { // warm the buffer
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				if _, err := d.Next(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func sizeName(n int) string {
	switch {
	case n >= 4000:
		return "kd-max"
	case n >= 1000:
		return "1000B"
	}
	return "small"
}

// BenchmarkConnKD measures one KD frame from a client Conn to a server
// Conn over net.Pipe (frame building, write, read, decode).
func BenchmarkConnKD(b *testing.B) {
	cn, sn := pipePair(b)
	ch := make(chan *Conn, 1)
	go func() {
		c, err := Server(b.Context(), sn, Config{KeepAlive: -1})
		if err != nil {
			b.Error(err)
		}
		ch <- c
	}()
	cc, err := Client(b.Context(), cn, Config{KeepAlive: -1})
	if err != nil {
		b.Fatal(err)
	}
	sc := <-ch
	if sc == nil {
		b.FailNow()
	}
	defer cc.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := sc.Recv(); err != nil {
				return
			}
		}
	}()
	payload := make([]byte, 1000)
	b.ReportAllocs()
	b.SetBytes(int64(HeaderSize + 2 + len(payload)))
	for b.Loop() {
		if err := cc.SendKD(2, payload); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	sc.Close()
	<-done
}
