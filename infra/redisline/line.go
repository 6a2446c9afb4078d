// Package redisline keeps the waiting rooms of queue items in Redis: who is
// in each line and in which place, the serving counter, and the admissions
// given. All of an item's line lives under the item's hash tag
// {item:<id>}, the slot of its stock ledger, because admitting reads the
// ledger's stock and buyer records atomically with the admission:
//
//	<p>:{item:42}:line         hash  born, shuffled, tail, served, last_ms, pre, admitted, used, expired
//	<p>:{item:42}:line:queue   zset  user -> place (0: in the pre-queue, not yet shuffled)
//	<p>:{item:42}:line:active  zset  user -> expiry ms of an admission unexpired and unused
//	<p>:{item:42}:line:adm     hash  user -> expiry ms of their admission, for everyone admitted
//
// Every rule runs in one Lua script, line.lua, whose header states its
// guarantees; a killed API instance loses nobody's place, since nothing of
// the line lives in an instance.
package redisline

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/domain/sale"
	"seckill/infra/redisstock"
)

//go:embed line.lua
var lineSrc string

var lineScript = redis.NewScript(lineSrc)

// Store is the Redis waiting rooms under one key prefix, the stock
// ledger's. It is safe for concurrent use.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	joins  joinBatch
}

// New returns the lines kept under prefix (the stock ledger's prefix, whose
// keys the lines read) on rdb; the caller owns rdb.
func New(rdb redis.UniversalClient, prefix string) *Store {
	if prefix == "" {
		prefix = redisstock.DefaultPrefix
	}
	return &Store{rdb: rdb, prefix: prefix}
}

type lineKeys struct{ line, queue, active, adm, sale, buyers string }

func (s *Store) keys(id sale.ItemID) lineKeys {
	base := s.prefix + ":{item:" + id.String() + "}:line"
	sk, bk := redisstock.LineKeys(s.prefix, id)
	return lineKeys{base, base + ":queue", base + ":active", base + ":adm", sk, bk}
}

// KeyPatterns lists the keys a Store with this prefix builds for item id,
// for the docs test.
func KeyPatterns(prefix string, id sale.ItemID) []string {
	k := New(nil, prefix).keys(id)
	return []string{k.line, k.queue, k.active, k.adm}
}

func (k lineKeys) all() []string { return []string{k.line, k.queue, k.active, k.adm, k.sale, k.buyers} }

// Join puts user in item's line and returns their place (0 in the
// pre-queue). Joining again returns the first place. It reads none of the
// line's state: Tick does.
//
// Joins that arrive together share one round trip: a caller that finds
// fewer than joinSenders pipelines in flight sends every join pending at
// that moment in one pipeline (one script call each, so each stays
// atomic), and callers arriving meanwhile wait for the next pipeline. A
// join then costs the API a fraction of a round trip's syscalls, which
// were most of its cost one by one.
func (s *Store) Join(ctx context.Context, id sale.ItemID, user sale.UserID, c sale.LineConfig) (int64, error) {
	call := &joinCall{id: id, user: user, c: c, done: make(chan struct{})}
	s.joins.mu.Lock()
	s.joins.pending = append(s.joins.pending, call)
	lead := s.joins.sending < joinSenders
	if lead {
		s.joins.sending++
	}
	s.joins.mu.Unlock()
	if lead {
		// Other callers' joins ride on this send: it must not end with
		// this caller's request.
		s.flushJoins(context.WithoutCancel(ctx))
	}
	select {
	case <-call.done:
		return call.place, call.err
	case <-ctx.Done():
		return 0, fmt.Errorf("redisline: join item %d: %w", id, ctx.Err())
	}
}

// joinSenders is how many join pipelines may be in flight at once. With
// one, Redis ran a batch while the API only waited for it, and the API
// built the next batch while Redis was idle. Two let one batch run while
// the next is built: BenchmarkJoin 23–28 → 16–23 µs a join; in a whole
// system on two cores, within the noise, as one sender's bigger batches
// save syscalls (docs/BENCHMARKS.md, What was tried).
const joinSenders = 2

// joinBatch is the joins waiting for a pipeline, and how many pipelines
// are being sent.
type joinBatch struct {
	mu      sync.Mutex
	pending []*joinCall
	sending int
}

// joinCall is one Join waiting for its answer (done closed).
type joinCall struct {
	id    sale.ItemID
	user  sale.UserID
	c     sale.LineConfig
	place int64
	err   error
	done  chan struct{}
}

// flushJoins sends the pending joins in one pipeline (none, if another
// sender took them first); joins that arrived during the send go in the
// next, sent by a goroutine of its own so that this caller's answer does
// not wait for it. A sender gives up its slot only when it finds nothing
// pending, under the lock every join appends under, so no join is left
// waiting with no sender to take it.
func (s *Store) flushJoins(ctx context.Context) {
	s.joins.mu.Lock()
	batch := s.joins.pending
	s.joins.pending = nil
	s.joins.mu.Unlock()
	if len(batch) > 0 {
		s.sendJoins(ctx, batch)
	}
	s.joins.mu.Lock()
	more := len(s.joins.pending) > 0
	if !more {
		s.joins.sending--
	}
	s.joins.mu.Unlock()
	if more {
		go s.flushJoins(ctx)
	}
}

// sendJoins runs batch's join scripts in one pipeline and answers each
// call. A script Redis does not have cached yet (NOSCRIPT) is run again
// alone, which loads it.
func (s *Store) sendJoins(ctx context.Context, batch []*joinCall) {
	cmds := make([]*redis.Cmd, len(batch))
	args := make([][]any, len(batch))
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range batch {
			a, err := scriptArgs(c.c, "join", string(c.user))
			if err != nil {
				c.err = err
				continue
			}
			args[i] = a
			cmds[i] = lineScript.EvalSha(ctx, p, s.keys(c.id).all(), a...)
		}
		return nil
	})
	for i, c := range batch {
		if cmds[i] != nil {
			v, err := cmds[i].Int64Slice()
			if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
				v, err = lineScript.Run(ctx, s.rdb, s.keys(c.id).all(), args[i]...).Int64Slice()
			}
			c.place, c.err = decodePlace(c.id, v, err)
		}
		close(c.done)
	}
}

// Tick opens the line if its opening has come, retires used and expired
// admissions, admits the next places at the line's rate, and returns the
// state.
func (s *Store) Tick(ctx context.Context, id sale.ItemID, c sale.LineConfig) (sale.LineState, error) {
	_, st, err := s.run(ctx, id, c, "tick", "")
	return st, err
}

func (s *Store) run(ctx context.Context, id sale.ItemID, c sale.LineConfig, op, user string) (int64, sale.LineState, error) {
	args, err := scriptArgs(c, op, user)
	if err != nil {
		return 0, sale.LineState{}, err
	}
	v, err := lineScript.Run(ctx, s.rdb, s.keys(id).all(), args...).Int64Slice()
	return decode(id, op, v, err)
}

// scriptArgs is line.lua's ARGV for op, with a fresh secret shuffle seed.
func scriptArgs(c sale.LineConfig, op, user string) ([]any, error) {
	seed := make([]byte, 16)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("redisline: seed: %w", err)
	}
	return []any{op, c.OpensAt.UnixMilli(), max(c.AdmitPerSecond, 1), max(c.MaxActive, 0),
		c.AdmissionTTL.Milliseconds(), hex.EncodeToString(seed), user}, nil
}

// decode reads line.lua's reply.
func decode(id sale.ItemID, op string, v []int64, err error) (int64, sale.LineState, error) {
	if err != nil {
		return 0, sale.LineState{}, fmt.Errorf("redisline: %s item %d: %w", op, id, err)
	}
	if len(v) != 12 {
		return 0, sale.LineState{}, fmt.Errorf("redisline: %s item %d: reply of %d values", op, id, len(v))
	}
	return v[0], sale.LineState{
		Shuffled: v[1] == 1, Tail: v[2], Served: v[3], Stock: v[4], Active: v[5],
		Admitted: v[6], Used: v[7], Expired: v[8], Pre: v[9], Now: time.UnixMilli(v[10]).UTC(), Born: v[11],
	}, nil
}

// decodePlace reads line.lua's reply to a join.
func decodePlace(id sale.ItemID, v []int64, err error) (int64, error) {
	if err != nil {
		return 0, fmt.Errorf("redisline: join item %d: %w", id, err)
	}
	if len(v) != 1 {
		return 0, fmt.Errorf("redisline: join item %d: reply of %d values, want the place", id, len(v))
	}
	return v[0], nil
}

// Reseed tells item's line what the database knows when the item's lost
// sale is rebuilt: buyers users hold an order on it, and each used an
// admission. A line that has admitted nobody and counted no use (begun
// again after the loss: it cannot admit while the ledger has no sale)
// takes buyers as its count of used admissions, and Reseed reports true;
// any other line is left as it is. Reseed never opens the line.
func (s *Store) Reseed(ctx context.Context, id sale.ItemID, buyers int64) (bool, error) {
	seeded, _, err := s.run(ctx, id, sale.LineConfig{}, "seed", strconv.FormatInt(buyers, 10))
	return seeded == 1, err
}

// Place returns user's standing in item's line, or sale.ErrNotFound if they
// never joined it (or the line was lost with a Redis wipe).
func (s *Store) Place(ctx context.Context, id sale.ItemID, user sale.UserID) (sale.LinePlace, error) {
	k := s.keys(id)
	var place *redis.FloatCmd
	var adm *redis.StringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		place = p.ZScore(ctx, k.queue, string(user))
		adm = p.HGet(ctx, k.adm, string(user))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return sale.LinePlace{}, fmt.Errorf("redisline: place item %d: %w", id, err)
	}
	if errors.Is(place.Err(), redis.Nil) {
		return sale.LinePlace{}, sale.ErrNotFound
	}
	out := sale.LinePlace{Place: int64(place.Val())}
	if ms, err := strconv.ParseInt(adm.Val(), 10, 64); err == nil {
		out.AdmittedUntil = time.UnixMilli(ms).UTC()
	}
	return out, nil
}
