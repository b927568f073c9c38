package node

import (
	"io"
	"net/http"
	"sync"
)

// pipeWriter is an http.ResponseWriter whose body is read as it is
// written (io.Pipe), so that a streaming handler can be relayed.
type pipeWriter struct {
	h    http.Header
	pw   *io.PipeWriter
	once sync.Once
}

func newPipeWriter() (*io.PipeReader, *pipeWriter) {
	pr, pw := io.Pipe()
	return pr, &pipeWriter{h: http.Header{}, pw: pw}
}

func (p *pipeWriter) Header() http.Header         { return p.h }
func (p *pipeWriter) WriteHeader(int)             {}
func (p *pipeWriter) Write(b []byte) (int, error) { return p.pw.Write(b) }
func (p *pipeWriter) Flush()                      {}
func (p *pipeWriter) close()                      { p.once.Do(func() { _ = p.pw.Close() }) }
