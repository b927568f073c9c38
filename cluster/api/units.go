package api

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that reads and prints as "10s", "1m30s".
type Duration time.Duration

// Std returns the duration as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}

// Bytes is a size in bytes that prints with the largest binary unit that
// divides it exactly ("256MiB", "1536KiB", "100B").
type Bytes int64

var byteUnits = []struct {
	suffix string
	size   int64
}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}

func (b Bytes) String() string {
	if b == 0 {
		return "0B"
	}
	for _, u := range byteUnits {
		if int64(b)%u.size == 0 {
			return strconv.FormatInt(int64(b)/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

func (b Bytes) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText accepts what String prints, and a plain number of bytes.
func (b *Bytes) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.size
			break
		}
	}
	if mult == 1 {
		s = strings.TrimSuffix(s, "B")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("invalid size %q", text)
	}
	*b = Bytes(n * mult)
	return nil
}

// UnmarshalJSON also accepts a bare JSON number of bytes.
func (b *Bytes) UnmarshalJSON(data []byte) error {
	var n int64
	if err := json.Unmarshal(data, &n); err == nil {
		*b = Bytes(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("invalid size %s", data)
	}
	return b.UnmarshalText([]byte(s))
}

// NanoCPUs is a CPU amount in billionths of a CPU; it prints as a decimal
// number of CPUs ("0.5").
type NanoCPUs int64

// CPUs returns the amount as a number of CPUs.
func (c NanoCPUs) CPUs() float64 { return float64(c) / 1e9 }

func (c NanoCPUs) String() string { return strconv.FormatFloat(c.CPUs(), 'f', -1, 64) }

func (c NanoCPUs) MarshalJSON() ([]byte, error) { return []byte(c.String()), nil }

func (c *NanoCPUs) UnmarshalJSON(data []byte) error {
	s := strings.Trim(string(data), `"`)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return fmt.Errorf("invalid cpus %s", data)
	}
	*c = NanoCPUs(f*1e9 + 0.5)
	return nil
}
