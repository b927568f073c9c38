package main

import (
	"github.com/gitorc/gitorc/cluster/agent/containerd/imagetest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// benchImage is one of the suite's images: the same busybox root
// filesystem (one layer, built by imagetest from Debian's busybox-static)
// pushed to gitorc's registry and `docker import`ed for Swarm, with the
// same command.
type benchImage struct {
	name string // web1, web2, bad
	repo string // in gitorc's registry
	tag  string
	img  *imagetest.Image
}

// webCmd is busybox httpd under a shell that exits on SIGTERM: httpd as a
// container's first process ignores SIGTERM, so every stop would wait out
// the grace period (10 s).
var webCmd = []string{"/bin/sh", "-c", "trap 'exit 0' TERM INT; /bin/busybox httpd -f -p 80 -h /www & wait"}

// badCmd is an image that fails at once, for the rollback step.
var badCmd = []string{"/bin/sh", "-c", "echo bad image exiting; exit 1"}

// imageEnv is the images' environment (docker import's --change ENV).
var imageEnv = []string{"PATH=/bin"}

func benchImages() ([]benchImage, error) {
	www := func(v string) []imagetest.File {
		return []imagetest.File{{Path: "/www", Dir: true, Mode: 0o755},
			{Path: "/www/index.html", Mode: 0o644, Data: []byte("web v" + v + "\n")}}
	}
	defs := []struct {
		name, repo, tag string
		cmd             []string
		extra           []imagetest.File
	}{
		{"web1", "bench/web", "1", webCmd, www("1")},
		{"web2", "bench/web", "2", webCmd, www("2")},
		{"bad", "bench/bad", "1", badCmd, nil},
	}
	var out []benchImage
	for _, d := range defs {
		img, err := imagetest.Busybox(ocispec.ImageConfig{Env: imageEnv, Cmd: d.cmd}, d.extra...)
		if err != nil {
			return nil, err
		}
		out = append(out, benchImage{name: d.name, repo: d.repo, tag: d.tag, img: img})
	}
	return out, nil
}
