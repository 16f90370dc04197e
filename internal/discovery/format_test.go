package discovery

import (
	"encoding/json"
	"testing"
)

func TestFormatJSON(t *testing.T) {
	t.Parallel()
	out, err := FormatJSON("H", []string{"tcp:Port=53:60", "npipe:Pipe=P,Password=*"})
	if err != nil {
		t.Fatal(err)
	}
	var doc JSONResult
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Host != "H" || len(doc.Servers) != 2 ||
		doc.Servers[0].Protocol != "tcp" || doc.Servers[0].Password ||
		doc.Servers[1].Protocol != "npipe" || !doc.Servers[1].Password ||
		doc.Servers[1].Kind != ServerKind {
		t.Fatalf("unexpected document %+v", doc)
	}
}
