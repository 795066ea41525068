package bundle

import (
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progressDelay is how long packing runs before a bar appears; a variable
// so tests can shorten it.
var progressDelay = time.Second

const progressTick = 150 * time.Millisecond

// progress counts content bytes packed and, on a terminal, draws a bar once
// packing has taken longer than progressDelay. A nil *progress counts nothing.
type progress struct {
	n    atomic.Int64
	quit chan struct{}
	wg   sync.WaitGroup
}

func startProgress(w io.Writer, isTerminal bool, total int64) *progress {
	if w == nil || !isTerminal {
		return nil
	}
	p := &progress{quit: make(chan struct{})}
	p.wg.Add(1)
	go p.run(w, total)
	return p
}

func (p *progress) add(n int) {
	if p != nil {
		p.n.Add(int64(n))
	}
}

// stop removes the bar, if drawn, and waits for the drawing goroutine.
func (p *progress) stop() {
	if p == nil {
		return
	}
	close(p.quit)
	p.wg.Wait()
}

func (p *progress) run(w io.Writer, total int64) {
	defer p.wg.Done()
	// The bar runs from the start, so its rate is right, but draws
	// nothing until the delay has passed.
	gate := &gateWriter{w: w}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(gate),
		progressbar.OptionSetDescription("packing"),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(progressTick),
		progressbar.OptionClearOnFinish())
	bar.StartWithoutRender()
	delay := time.NewTimer(progressDelay)
	defer delay.Stop()
	tick := time.NewTicker(progressTick)
	defer tick.Stop()
	for {
		select {
		case <-p.quit:
			_ = bar.Clear()
			return
		case <-delay.C:
			gate.open.Store(true)
		case <-tick.C:
			_ = bar.Set64(p.n.Load())
		}
	}
}

// gateWriter drops writes until opened.
type gateWriter struct {
	w    io.Writer
	open atomic.Bool
}

func (g *gateWriter) Write(b []byte) (int, error) {
	if !g.open.Load() {
		return len(b), nil
	}
	return g.w.Write(b)
}
