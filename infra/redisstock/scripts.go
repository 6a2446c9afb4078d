package redisstock

import (
	"embed"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Script return codes. Every outcome of every script has its own number, so a
// reply decoded by the wrong function can never pass for a valid outcome. The
// Lua sources in lua/ refer to them by name ($NAME) and are expanded from these
// constants, so Go and Lua cannot drift apart.
const (
	// reserve: {code, stock, gen, order_id}
	codeReserveAccepted   = 10
	codeReserveNotFound   = 11
	codeReserveNotStarted = 12
	codeReserveEnded      = 13
	codeReserveSoldOut    = 14
	codeReserveAlready    = 15
	codeReserveTicketUsed = 16

	// open: code
	codeOpenCreated   = 20
	codeOpenRefreshed = 21

	// setwindow: code
	codeWindowSet      = 30
	codeWindowNotFound = 31

	// restock: {code, gen}
	codeRestockApplied  = 40
	codeRestockRepeat   = 41
	codeRestockNotFound = 42

	// release: {code, gen}
	codeReleaseReleased  = 60
	codeReleaseUnknown   = 61
	codeReleaseNotFound  = 63
	codeReleaseBadRecord = 64

	// drop: {code, gen}
	codeDropDropped = 65
	codeDropUnknown = 66

	// trim: {code, units taken, gen}
	codeTrimDone     = 67
	codeTrimNotFound = 68

	// repair: {code, gen}
	codeRepairApplied  = 70
	codeRepairConflict = 71

	// return: {code, units, gen}
	codeReturnDone     = 80
	codeReturnNotFound = 81

	// move out: {code, units}; move in: code; move close: code
	codeMoveOut      = 90
	codeMoveEmpty    = 91
	codeMoveNotFound = 92
	codeMoveIn       = 93
	codeMoveRepeat   = 94
	codeMoveClosed   = 95
)

// The scripts live in lua/, one file each, with a header that states their
// keys, arguments, reply and guarantees. Every age the ledger keeps
// (acceptance, next look, overdue) is measured on one clock, Redis TIME,
// read inside the scripts, so a skew between API instances can never make a
// fresh order look old. Redis 5+ replicates script effects, which is what
// allows TIME inside a script that writes.
//
//go:embed lua/*.lua
var luaFiles embed.FS

var (
	moveOutScript   = loadScript("move_out")
	moveInScript    = loadScript("move_in")
	moveCloseScript = loadScript("move_close")
	bucketScript    = loadScript("bucket")
	returnScript    = loadScript("return")
	reserveScript   = loadScript("reserve")
	openScript      = loadScript("open")
	setWindowScript = loadScript("set_window")
	restockScript   = loadScript("restock")
	settleScript    = loadScript("settle")
	releaseScript   = loadScript("release")
	dropScript      = loadScript("drop")
	trimScript      = loadScript("trim")
	postponeScript  = loadScript("postpone")
	dueScript       = loadScript("due")
	repairScript    = loadScript("repair")
)

// luaChunk is the most values a script passes to one command with unpack.
// Lua 5.1's unpack fails past its C stack (about 8000 values), and the ids
// of one Settle or MarkPublished call have no bound of their own.
const luaChunk = 1000

// loadScript reads lua/<name>.lua and expands it with newScript.
func loadScript(name string) *redis.Script {
	src, err := luaFiles.ReadFile("lua/" + name + ".lua")
	if err != nil {
		panic("redisstock: " + err.Error())
	}
	return newScript(string(src))
}

// newScript expands the $NAME code placeholders and panics on any left over,
// so a typo in a script fails at package init, not in production.
func newScript(src string) *redis.Script {
	codes := []struct {
		name string
		code int
	}{
		// No name is a prefix of another, so the replacement order of
		// strings.Replacer cannot matter.
		{"$RESERVE_ACCEPTED", codeReserveAccepted},
		{"$RESERVE_NOT_FOUND", codeReserveNotFound},
		{"$RESERVE_NOT_STARTED", codeReserveNotStarted},
		{"$RESERVE_ENDED", codeReserveEnded},
		{"$RESERVE_SOLD_OUT", codeReserveSoldOut},
		{"$RESERVE_ALREADY", codeReserveAlready},
		{"$RESERVE_TICKET_USED", codeReserveTicketUsed},
		{"$OPEN_CREATED", codeOpenCreated},
		{"$OPEN_REFRESHED", codeOpenRefreshed},
		{"$WINDOW_SET", codeWindowSet},
		{"$WINDOW_NOT_FOUND", codeWindowNotFound},
		{"$RESTOCK_APPLIED", codeRestockApplied},
		{"$RESTOCK_REPEAT", codeRestockRepeat},
		{"$RESTOCK_NOT_FOUND", codeRestockNotFound},
		{"$RELEASE_RELEASED", codeReleaseReleased},
		{"$RELEASE_UNKNOWN", codeReleaseUnknown},
		{"$RELEASE_NOT_FOUND", codeReleaseNotFound},
		{"$RELEASE_BAD_RECORD", codeReleaseBadRecord},
		{"$DROP_DROPPED", codeDropDropped},
		{"$DROP_UNKNOWN", codeDropUnknown},
		{"$TRIM_DONE", codeTrimDone},
		{"$TRIM_NOT_FOUND", codeTrimNotFound},
		{"$REPAIR_APPLIED", codeRepairApplied},
		{"$REPAIR_CONFLICT", codeRepairConflict},
		{"$RETURN_DONE", codeReturnDone},
		{"$RETURN_NOT_FOUND", codeReturnNotFound},
		{"$MOVE_OUT", codeMoveOut},
		{"$MOVE_EMPTY", codeMoveEmpty},
		{"$MOVE_NOT_FOUND", codeMoveNotFound},
		{"$MOVE_IN", codeMoveIn},
		{"$MOVE_REPEAT", codeMoveRepeat},
		{"$MOVE_CLOSED", codeMoveClosed},
	}
	pairs := make([]string, 0, 2*len(codes)+2)
	for _, c := range codes {
		pairs = append(pairs, c.name, strconv.Itoa(c.code))
	}
	pairs = append(pairs, "$CHUNK", strconv.Itoa(luaChunk))
	out := strings.NewReplacer(pairs...).Replace(src)
	if strings.Contains(out, "$") {
		panic("redisstock: unexpanded code placeholder in script:\n" + out)
	}
	return redis.NewScript(out)
}
