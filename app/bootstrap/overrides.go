package bootstrap

// Overrides swaps single components for the workshop labs (app/lab), which
// plug in the naive variants from app/lab/naive. Production (serve, worker,
// all) leaves it zero, and a zero field changes nothing. bootstrap never
// imports the naive package; the lab passes the component in, behind the
// same port the production one implements.
type Overrides struct {
	// Labs 1-5 add their fields here.

	// Labs 6 and on add their fields here.
}
