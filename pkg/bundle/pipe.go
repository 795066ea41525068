package bundle

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// chunkPipe is an io.Writer that gathers writes into fixed-size chunks and
// hands each chunk to every sink, each sink on its own goroutine. So reading
// files, hashing and compressing all overlap, and a slow sink only stalls
// the writer once every chunk buffer is in use. The goroutines live until
// Close.
type chunkPipe struct {
	sinks []chan *chunk
	free  chan *chunk
	cur   *chunk
	wg    sync.WaitGroup

	mu  sync.Mutex
	err error // first error from a sink
}

type chunk struct {
	b    []byte
	refs atomic.Int32 // sinks still to write it
}

func newChunkPipe(size, buffers int, dsts ...io.Writer) *chunkPipe {
	p := &chunkPipe{free: make(chan *chunk, buffers)}
	for range buffers {
		p.free <- &chunk{b: make([]byte, 0, size)}
	}
	for _, dst := range dsts {
		ch := make(chan *chunk, buffers)
		p.sinks = append(p.sinks, ch)
		p.wg.Add(1)
		go p.run(dst, ch)
	}
	return p
}

func (p *chunkPipe) run(dst io.Writer, ch <-chan *chunk) {
	defer p.wg.Done()
	for c := range ch {
		if p.loadErr() == nil {
			if _, err := dst.Write(c.b); err != nil {
				p.setErr(err)
			}
		}
		if c.refs.Add(-1) == 0 {
			c.b = c.b[:0]
			p.free <- c
		}
	}
}

func (p *chunkPipe) loadErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *chunkPipe) setErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

var errPipeClosed = errors.New("write to closed pipe")

func (p *chunkPipe) send() {
	p.cur.refs.Store(int32(len(p.sinks)))
	for _, s := range p.sinks {
		s <- p.cur
	}
	p.cur = nil
}

func (p *chunkPipe) Write(b []byte) (int, error) {
	if p.sinks == nil {
		return 0, errPipeClosed
	}
	n := len(b)
	for len(b) > 0 {
		if p.cur == nil {
			if err := p.loadErr(); err != nil {
				return n - len(b), err
			}
			p.cur = <-p.free
		}
		c := p.cur
		k := copy(c.b[len(c.b):cap(c.b)], b)
		c.b = c.b[:len(c.b)+k]
		b = b[k:]
		if len(c.b) == cap(c.b) {
			p.send()
		}
	}
	return n, nil
}

// Close hands over the last partial chunk, waits for the sinks to finish
// and returns the first error one of them returned.
func (p *chunkPipe) Close() error {
	if p.sinks == nil {
		return p.loadErr()
	}
	if p.cur != nil && len(p.cur.b) > 0 {
		p.send()
	}
	for _, s := range p.sinks {
		close(s)
	}
	p.sinks = nil
	p.wg.Wait()
	return p.loadErr()
}
