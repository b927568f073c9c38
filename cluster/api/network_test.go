package api

import (
	"encoding/json"
	"reflect"
	"testing"
)

func sampleView() *NetView {
	return &NetView{NodeID: "n1", Subnet: "10.64.1.0/24", TaskPool: DefaultTaskPool, VIPPool: DefaultVIPPool,
		Peers:    []NetPeer{{NodeID: "n2", Name: "h2", PublicKey: "k2", Endpoint: "192.0.2.2:51820", Subnet: "10.64.2.0/24"}},
		Networks: []NetNetwork{{ID: "net1", Name: "app_back", Internal: true, Members: []string{"10.64.1.2", "10.64.2.2"}}},
		Services: []NetService{{ID: "s1", Name: "app_api", ShortName: "api", Mode: EndpointVIP, VIP: "10.96.0.1",
			Networks: []NetAttachment{{NetworkID: "net1", Aliases: []string{"backend"}}},
			Ports:    []PortConfig{{Name: "http", Protocol: ProtocolTCP, Target: 80, Published: 8080, Mode: PublishIngress}},
			Backends: []NetBackend{{TaskID: "t1", NodeID: "n1", Addr: "10.64.1.2"}}}},
		Tasks: []NetTask{{ID: "t1", ServiceID: "s1", Addr: "10.64.1.2", Networks: []string{"net1"}}},
	}
}

func copyView(t *testing.T, v *NetView) *NetView {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out NetView
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

// Every field of a view counts: changing any one leaf of a copy (found by
// reflection, so a field added later is covered) makes it unequal.
func TestNetViewEqualSeesEveryField(t *testing.T) {
	v := sampleView()
	if !v.Equal(copyView(t, v)) {
		t.Fatal("a copy is not equal")
	}
	if !(&NetView{}).Equal(&NetView{Peers: []NetPeer{}}) || v.Equal(nil) || !(*NetView)(nil).Equal(nil) {
		t.Error("nil and empty lists, nil views")
	}
	leaves := 0
	var walk func(path string, x reflect.Value, mutate func(*NetView) reflect.Value)
	walk = func(path string, x reflect.Value, at func(*NetView) reflect.Value) {
		switch x.Kind() {
		case reflect.Struct:
			for i := range x.NumField() {
				f := x.Type().Field(i)
				walk(path+"."+f.Name, x.Field(i), func(c *NetView) reflect.Value { return at(c).Field(i) })
			}
		case reflect.Slice:
			for i := range x.Len() {
				walk(path+"[i]", x.Index(i), func(c *NetView) reflect.Value { return at(c).Index(i) })
			}
			c := copyView(t, v)
			s := at(c)
			s.Set(s.Slice(0, 0))
			if v.Equal(c) {
				t.Errorf("%s emptied: still equal", path)
			}
		default:
			leaves++
			c := copyView(t, v)
			f := at(c)
			switch f.Kind() {
			case reflect.String:
				f.SetString(f.String() + "x")
			case reflect.Bool:
				f.SetBool(!f.Bool())
			case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
				f.SetUint(f.Uint() + 1)
			case reflect.Int, reflect.Int32, reflect.Int64:
				f.SetInt(f.Int() + 1)
			default:
				t.Fatalf("%s: kind %s not covered by the test", path, f.Kind())
			}
			if v.Equal(c) {
				t.Errorf("%s changed: still equal", path)
			}
		}
	}
	walk("view", reflect.ValueOf(v).Elem(), func(c *NetView) reflect.Value { return reflect.ValueOf(c).Elem() })
	if leaves < 25 {
		t.Errorf("walked %d leaves only", leaves)
	}
}
