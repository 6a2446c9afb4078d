package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/peterbourgon/ff/v3/ffcli"

	"seckill/app/buildinfo"
)

// versionCommand is `seckill version`: the build's version, commit and Go
// toolchain, the same facts the seckill_build_info gauge exports.
func versionCommand(stdout, stderr io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("seckill version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &ffcli.Command{
		Name: "version", ShortUsage: "seckill version",
		ShortHelp: "print the version, commit and Go version of this binary",
		LongHelp:  "Prints the version, the commit the binary was built from and the Go toolchain that built it.\nThe running instances export the same as the seckill_build_info metric.",
		FlagSet:   fs,
		Exec: func(_ context.Context, rest []string) error {
			if len(rest) > 0 {
				return usageErrorf("unexpected arguments %q; seckill version takes none", rest)
			}
			fmt.Fprintln(stdout, buildinfo.Read())
			return nil
		},
	}
}
