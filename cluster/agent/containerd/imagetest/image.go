package imagetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"sort"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BusyboxPath is where Debian's busybox-static installs its binary.
const BusyboxPath = "/bin/busybox"

// Applets are the busybox commands linked into /bin of a Busybox image.
var Applets = []string{"sh", "sleep", "cat", "echo", "true", "false", "ls", "stat",
	"test", "id", "kill", "grep", "head", "tail", "touch", "rm", "mkdir", "env",
	"printf", "wc", "date", "hostname", "mount", "ps", "yes", "dd", "seq", "sha256sum",
	"httpd", "wget", "nc", "nslookup", "ping", "sed", "awk", "pidof", "netstat", "ip"}

// File is one entry of a layer.
type File struct {
	Path string // absolute, in the image
	Mode int64  // permission bits; with Dir set, of a directory
	Dir  bool
	// Link, when set, makes the entry a symbolic link to Link.
	Link string
	Data []byte
}

// Image is a single-platform OCI image held in memory.
type Image struct {
	Manifest     []byte
	ManifestDesc ocispec.Descriptor
	Config       []byte
	ConfigDesc   ocispec.Descriptor
	Layers       [][]byte // gzipped tars
	LayerDescs   []ocispec.Descriptor
}

// Busybox builds an image whose /bin holds busybox and its Applets, with
// cfg as its config (Cmd, Entrypoint, Env, StopSignal…). extra files are
// added to the same layer.
func Busybox(cfg ocispec.ImageConfig, extra ...File) (*Image, error) {
	bb, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, fmt.Errorf("busybox: %w", err)
	}
	files := []File{
		{Path: "/bin", Dir: true, Mode: 0o755},
		{Path: "/etc", Dir: true, Mode: 0o755},
		{Path: "/tmp", Dir: true, Mode: 0o1777},
		{Path: "/root", Dir: true, Mode: 0o700},
		{Path: "/bin/busybox", Mode: 0o755, Data: bb},
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")},
		{Path: "/etc/group", Mode: 0o644, Data: []byte("root:x:0:\nnogroup:x:65534:\n")},
	}
	for _, a := range Applets {
		files = append(files, File{Path: "/bin/" + a, Link: "busybox"})
	}
	if cfg.Env == nil {
		cfg.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	return Build(cfg, append(files, extra...))
}

// Build makes a one-layer image of files with the given config.
func Build(cfg ocispec.ImageConfig, files []File) (*Image, error) {
	layer, diffID, err := tarGz(files)
	if err != nil {
		return nil, err
	}
	img := ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config:   cfg,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
	}
	cb, err := json.Marshal(img)
	if err != nil {
		return nil, err
	}
	out := &Image{Layers: [][]byte{layer}}
	out.LayerDescs = []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(layer), Size: int64(len(layer))}}
	if err := out.setConfig(cb); err != nil {
		return nil, err
	}
	return out, nil
}

// Healthcheck is a Dockerfile's HEALTHCHECK as Docker and buildkit write
// it into an image's config (config.Healthcheck), a field the OCI image
// spec does not define: Test is ["CMD", args...], ["CMD-SHELL", command]
// or ["NONE"]; durations are nanoseconds in the JSON.
type Healthcheck struct {
	Test          []string      `json:"Test,omitempty"`
	Interval      time.Duration `json:"Interval,omitempty"`
	Timeout       time.Duration `json:"Timeout,omitempty"`
	StartPeriod   time.Duration `json:"StartPeriod,omitempty"`
	StartInterval time.Duration `json:"StartInterval,omitempty"`
	Retries       int           `json:"Retries,omitempty"`
}

// WithHealthcheck returns a copy of the image whose config carries hc as
// its config.Healthcheck, with the manifest made anew. The layers and the
// rest of the config stay as they are.
func (img *Image) WithHealthcheck(hc Healthcheck) (*Image, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(img.Config, &doc); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	cfg := map[string]json.RawMessage{}
	if raw, ok := doc["config"]; ok {
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("image config: %w", err)
		}
	}
	var err error
	if cfg["Healthcheck"], err = json.Marshal(hc); err != nil {
		return nil, err
	}
	if doc["config"], err = json.Marshal(cfg); err != nil {
		return nil, err
	}
	cb, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	out := &Image{Layers: img.Layers, LayerDescs: img.LayerDescs}
	if err := out.setConfig(cb); err != nil {
		return nil, err
	}
	return out, nil
}

// setConfig sets the image's config blob and makes its manifest, which
// names it and the layers.
func (img *Image) setConfig(cb []byte) error {
	img.Config = cb
	img.ConfigDesc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    img.ConfigDesc,
		Layers:    img.LayerDescs,
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return err
	}
	img.Manifest = mb
	img.ManifestDesc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb)),
		Platform: &ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}}
	return nil
}

// tarGz writes files as a gzipped tar and returns it with the digest of
// the uncompressed tar (the layer's diff ID).
func tarGz(files []File) ([]byte, digest.Digest, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	sorted := append([]File(nil), files...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	mtime := time.Unix(0, 0)
	for _, f := range sorted {
		name := path.Clean(f.Path)[1:]
		h := &tar.Header{Name: name, Mode: f.Mode, ModTime: mtime, Format: tar.FormatPAX}
		switch {
		case f.Dir:
			h.Typeflag, h.Name = tar.TypeDir, name+"/"
		case f.Link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.Link, 0o777
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, "", err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				return nil, "", err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	diffID := digest.FromBytes(raw.Bytes())
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return gz.Bytes(), diffID, nil
}

// WriteOCIArchive writes the image as an OCI image layout tar, its index
// entry named ref (a full reference such as "example.com/app:1") through
// both the containerd and the OCI name annotations.
func (img *Image) WriteOCIArchive(w io.Writer, ref string) error {
	tw := tar.NewWriter(w)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	desc := img.ManifestDesc
	desc.Annotations = map[string]string{
		"io.containerd.image.name": ref,
		ocispec.AnnotationRefName:  ref,
	}
	idx, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{desc}})
	if err != nil {
		return err
	}
	layout, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err := add(ocispec.ImageLayoutFile, layout); err != nil {
		return err
	}
	if err := add("index.json", idx); err != nil {
		return err
	}
	blobs := map[digest.Digest][]byte{img.ManifestDesc.Digest: img.Manifest, img.ConfigDesc.Digest: img.Config}
	for i, l := range img.Layers {
		blobs[img.LayerDescs[i].Digest] = l
	}
	for d, b := range blobs {
		if err := add(path.Join("blobs", d.Algorithm().String(), d.Encoded()), b); err != nil {
			return err
		}
	}
	return tw.Close()
}
