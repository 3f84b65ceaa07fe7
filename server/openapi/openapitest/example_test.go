package openapitest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"

	"depot/server/openapi"
	"depot/server/openapi/openapitest"
)

// A conformance test drives a server through a client whose transport
// checks every exchange, then looks at the mismatches and at the
// operations it has not exercised yet.
func Example() {
	srv := httptest.NewServer(openapi.Handler()) // stands in for depotd
	defer srv.Close()

	v, err := openapitest.NewValidator()
	if err != nil {
		panic(err)
	}
	tr := v.Transport(nil)
	client := &http.Client{Transport: tr}

	resp, err := client.Get(srv.URL + "/openapi.json")
	if err != nil {
		panic(err)
	}
	resp.Body.Close()

	fmt.Println("mismatches:", tr.Errors())
	seen := tr.Seen()
	missing := slices.DeleteFunc(v.Operations(), func(op string) bool { return slices.Contains(seen, op) })
	fmt.Println("seen:", seen)
	fmt.Println("not yet exercised:", len(missing))
	// Output:
	// mismatches: []
	// seen: [openapi_get]
	// not yet exercised: 33
}
