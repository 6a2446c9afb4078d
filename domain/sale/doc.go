// Package sale is the flash-sale business in plain Go: items and their sale
// window, orders and their lifecycle, the rules a purchase must pass, the
// sentinel errors those rules produce, and the ports the rules need.
//
// It imports only the standard library. Adapters in infra/ implement the
// ports; use cases in app/ drive them.
//
// Item and Order keep their fields exported so that adapters can map rows to
// and from them without reflection tricks. That departs from the
// unexported-fields style on purpose: every value that enters the system is
// built through NewItem, ParseUserID, ParseItemID or ParseOrderID, which are
// the only places where the rules are checked, so an exported field never
// holds an unchecked value from outside.
package sale
