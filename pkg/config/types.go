package config

import (
	"fmt"
	"strconv"
	"time"

	"github.com/ferry-hpc/ferry/pkg/job"
	"gopkg.in/yaml.v3"
)

// Size is a number of bytes. In YAML it is either a string in Slurm's
// notation, read by job.ParseMem ("256M", "1G", "512K"; a bare number in a
// string, such as "256", is megabytes as in sbatch), or a plain integer,
// which is bytes. So max_bundle: 256 is 256 bytes and max_bundle: "256" is
// 256 MiB; write the unit to be clear. In the environment a Size is always
// a string.
type Size int64

// ParseSize reads a size in Slurm's notation (see Size).
func ParseSize(s string) (Size, error) {
	n, err := job.ParseMem(s)
	return Size(n), err
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, "want a size such as 256M or 1G, got %s", nodeKind(n))
	}
	switch n.ShortTag() {
	case "!!null":
		*s = 0
	case "!!int":
		var v int64
		if err := n.Decode(&v); err != nil {
			return typeError(n, "size %s is out of range", n.Value)
		}
		*s = Size(v)
	case "!!str":
		v, err := ParseSize(n.Value)
		if err != nil {
			return typeError(n, "%v", err)
		}
		*s = v
	default:
		return typeError(n, "want a size such as 256M or 1G, or a whole number of bytes, got %s", n.Value)
	}
	return nil
}

var units = []struct {
	mult   int64
	suffix string
}{{1 << 40, "T"}, {1 << 30, "G"}, {1 << 20, "M"}, {1 << 10, "K"}}

// String renders the size with the largest binary unit that divides it
// ("256M"), or as "N bytes".
func (s Size) String() string {
	if u, ok := s.unit(); ok {
		return fmt.Sprintf("%d%s", int64(s)/u.mult, u.suffix)
	}
	return fmt.Sprintf("%d bytes", int64(s))
}

func (s Size) unit() (struct {
	mult   int64
	suffix string
}, bool) {
	for _, u := range units {
		if s != 0 && int64(s)%u.mult == 0 {
			return u, true
		}
	}
	return units[0], false
}

// MarshalYAML writes a size that reads back as the same value: "256M", or
// an integer of bytes.
func (s Size) MarshalYAML() (any, error) {
	if _, ok := s.unit(); ok {
		return s.String(), nil
	}
	return int64(s), nil
}

// Duration is a time.Duration that YAML writes as "5s" or "1m30s". A bare
// number other than 0 is refused: it has no unit.
type Duration time.Duration

// ParseDuration reads a Go duration such as "5s" or "1m30s".
func ParseDuration(s string) (Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want a duration such as 5s or 1m30s", s)
	}
	return Duration(d), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, "want a duration such as 5s, got %s", nodeKind(n))
	}
	switch n.ShortTag() {
	case "!!null":
		*d = 0
	case "!!str":
		v, err := ParseDuration(n.Value)
		if err != nil {
			return typeError(n, "%v", err)
		}
		*d = v
	case "!!int":
		if v, err := strconv.ParseInt(n.Value, 0, 64); err == nil && v == 0 {
			*d = 0
			return nil
		}
		return typeError(n, "%s has no unit: write a duration such as %ss", n.Value, n.Value)
	default:
		return typeError(n, "want a duration such as 5s, got %s", n.Value)
	}
	return nil
}

// Duration returns d as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// String renders d as time.Duration does ("5s", "1m30s").
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }
