package e2e

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"time"
)

// stampCaptureTime returns the PNG with a tEXt chunk "Creation Time" (the
// PNG spec's keyword) holding at in RFC 3339, right after the IHDR chunk.
// app/web's TestPicturesAreNewerThanThePages compares it with the last
// change to app/web/static, so a picture in docs/ cannot silently go stale.
// A buffer that is not a PNG is returned as it is.
func stampCaptureTime(png []byte, at time.Time) []byte {
	const sig = "\x89PNG\r\n\x1a\n"
	const ihdrEnd = len(sig) + 8 + 13 + 4 // signature, IHDR header, data, CRC
	if len(png) < ihdrEnd || !bytes.HasPrefix(png, []byte(sig)) || string(png[len(sig)+4:len(sig)+8]) != "IHDR" {
		return png
	}
	data := append([]byte("Creation Time\x00"), at.UTC().Format(time.RFC3339)...)
	chunk := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	body := append([]byte("tEXt"), data...)
	chunk = append(chunk, body...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(body))
	out := make([]byte, 0, len(png)+len(chunk))
	out = append(out, png[:ihdrEnd]...)
	out = append(out, chunk...)
	return append(out, png[ihdrEnd:]...)
}
