package event

import (
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

// TestEmbeddedTypeWithoutOCSFFails checks the rule that keeps the catalog's mappings complete:
// an embedded definition without ocsf (or with an unknown class) stops the catalog loading.
func TestEmbeddedTypeWithoutOCSFFails(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{
		"types/no_mapping.yml":   {Data: []byte("name: no_mapping\ndescription: A thing happened.\nfeature_category: x\nsaved_to_database: true\nstreamed: true\nscope: [Group]\n")},
		"types/bad_class.yml":    {Data: []byte("name: bad_class\ndescription: A thing happened.\nfeature_category: x\nsaved_to_database: true\nstreamed: true\nscope: [Group]\nocsf: {class: nope, activity: create}\n")},
		"types/good_mapping.yml": {Data: []byte("name: good_mapping\ndescription: A thing happened.\nfeature_category: x\nsaved_to_database: true\nstreamed: true\nscope: [Group]\nocsf: {class: entity_management, activity: create}\n")},
	}
	c := &Catalog{types: map[string]*Type{}}
	var errs []error
	require.NoError(t, c.addFS(fsys, "types", "embedded:", false, &errs))
	require.Len(t, errs, 2)
	require.ErrorContains(t, errs[0], "embedded:bad_class.yml")
	require.ErrorContains(t, errs[0], `ocsf.class "nope"`)
	require.ErrorContains(t, errs[1], "embedded:no_mapping.yml: ocsf is required for an embedded type")
	require.NotNil(t, c.types["good_mapping"])
}
