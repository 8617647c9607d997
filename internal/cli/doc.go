// Package cli is Ferry's command line: cobra commands that parse flags,
// fill an action and run it, and the single place where errors become exit
// codes. Only this package imports cobra.
package cli
