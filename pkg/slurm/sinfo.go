package slurm

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Node is one node as sinfo reports it.
type Node struct {
	Name       string
	State      string   // compact, without flags: "idle", "alloc", "mix", "down", "drain", "drng", ...
	Flags      string   // sinfo's state suffixes: "*" not responding, "~" powered off, "#" powering up, ...
	CPUs       int      // -1 when sinfo printed none
	MemBytes   int64    // real memory; 0 when sinfo printed none
	Reason     string   // why the node is down or drained; "" when none
	Partitions []string // every partition the node is in ("*" of the default dropped)
}

// Responding reports whether slurmctld hears from the node's slurmd.
func (n Node) Responding() bool { return !strings.Contains(n.Flags, "*") }

// sinfoFields is the -O list; Reason, which an admin types, last.
var sinfoFields = []string{"NodeList", "StateCompact", "CPUs", "Memory", "PartitionName", "Reason"}

func sinfoFormat() string { return formatO(sinfoFields) }

// SinfoArgs is the sinfo command line Nodes runs: one line per node and
// partition (-N), every partition (-a), plain numbers (--noconvert).
func SinfoArgs() []string {
	return []string{"-N", "-h", "-a", "--noconvert", "-O", sinfoFormat()}
}

// Nodes lists the cluster's nodes, one entry per node, in sinfo's order.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	out, err := c.Runner.Run(ctx, nil, "sinfo", SinfoArgs()...)
	if err != nil {
		return nil, err
	}
	return ParseNodes(out)
}

// ParseNodes parses the output of the sinfo command line SinfoArgs builds.
// A node in several partitions is listed once, with all its partitions.
func ParseNodes(out []byte) ([]Node, error) {
	nodes := []Node{}
	index := map[string]int{}
	recs := bytes.Split(out, []byte(recordEnd+"\n"))
	for i, rec := range recs {
		if i == len(recs)-1 {
			if len(bytes.TrimSpace(rec)) != 0 {
				return nil, fmt.Errorf("sinfo: unterminated line %q", truncate(string(rec), 200))
			}
			break
		}
		f := strings.SplitN(string(rec), fieldSep, len(sinfoFields))
		if len(f) != len(sinfoFields) {
			return nil, fmt.Errorf("sinfo: want %d fields, got %d in %q", len(sinfoFields), len(f), truncate(string(rec), 200))
		}
		for k := range f {
			f[k] = strings.TrimSpace(f[k])
		}
		name := f[0]
		if name == "" {
			return nil, fmt.Errorf("sinfo: no node name in %q", truncate(string(rec), 200))
		}
		part := strings.TrimSuffix(str(f[4]), "*")
		if k, ok := index[name]; ok {
			if part != "" && !slices.Contains(nodes[k].Partitions, part) {
				nodes[k].Partitions = append(nodes[k].Partitions, part)
			}
			continue
		}
		n := Node{Name: name, CPUs: -1, Reason: str(f[5])}
		n.State = strings.TrimRight(f[1], "*~#!%$@^-")
		n.Flags = f[1][len(n.State):]
		if c, err := strconv.Atoi(f[2]); err == nil {
			n.CPUs = c
		}
		if mb, err := strconv.ParseInt(strings.TrimRight(f[3], "+"), 10, 64); err == nil && mb > 0 {
			n.MemBytes = mb << 20
		}
		if n.Reason == "none" {
			n.Reason = ""
		}
		if part != "" {
			n.Partitions = []string{part}
		}
		index[name] = len(nodes)
		nodes = append(nodes, n)
	}
	return nodes, nil
}
