package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"cel.dev/cel-go/cel"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// engine is a compiled CUE or Rego policy, evaluated against JSON as
// policy-controller does: CUE is unified with the document and must
// validate; Rego must make data.sigstore.isCompliant true.
type engine struct {
	kind string // "cue" or "rego"
	src  string
	rego *rego.PreparedEvalQuery
}

// regoQuery is policy-controller's query.
const regoQuery = "data.sigstore.isCompliant"

// newEngine compiles a policy of the given type; line locates errors.
func newEngine(kind string, src Text) (*engine, error) {
	switch kind {
	case "cue":
		// Compiled once here to refuse a broken policy at load; evaluation
		// compiles again, since a cue.Context is not safe for concurrent
		// use.
		v := cuecontext.New().CompileString(src.S)
		if err := v.Err(); err != nil {
			return nil, fmt.Errorf("%d: cue policy does not compile: %s", src.Line, cueMessage(err))
		}
		return &engine{kind: kind, src: src.S}, nil
	case "rego":
		q, err := prepareRego(src.S)
		if err != nil {
			return nil, fmt.Errorf("%d: rego policy does not compile: %v", src.Line, err)
		}
		return &engine{kind: kind, src: src.S, rego: q}, nil
	case "":
		return nil, fmt.Errorf("%d: policy needs a type (cue or rego)", src.Line)
	}
	return nil, fmt.Errorf("%d: policy type %q: want cue or rego", src.Line, kind)
}

// prepareRego compiles a module, in Rego v1 syntax or, failing that, the
// v0 syntax policy-controller's examples are written in.
func prepareRego(src string) (*rego.PreparedEvalQuery, error) {
	ctx := context.Background()
	q, err := rego.New(rego.Query(regoQuery), rego.Module("policy.rego", src)).PrepareForEval(ctx)
	if err == nil {
		return &q, nil
	}
	q0, err0 := rego.New(rego.Query(regoQuery), rego.Module("policy.rego", src), rego.SetRegoVersion(ast.RegoV0)).PrepareForEval(ctx)
	if err0 == nil {
		return &q0, nil
	}
	return nil, err
}

// eval checks doc (JSON) against the policy; the error says why it fails.
func (e *engine) eval(ctx context.Context, doc []byte) error {
	switch e.kind {
	case "cue":
		cctx := cuecontext.New()
		p := cctx.CompileString(e.src)
		d := cctx.CompileBytes(doc)
		if err := d.Err(); err != nil {
			return fmt.Errorf("document is not valid input: %s", cueMessage(err))
		}
		if err := p.Unify(d).Validate(); err != nil {
			return fmt.Errorf("cue: %s", cueMessage(err))
		}
		return nil
	case "rego":
		var input any
		dec := json.NewDecoder(bytes.NewReader(doc))
		dec.UseNumber()
		if err := dec.Decode(&input); err != nil {
			return fmt.Errorf("document is not JSON: %v", err)
		}
		rs, err := e.rego.Eval(ctx, rego.EvalInput(input))
		if err != nil {
			return fmt.Errorf("rego: %v", err)
		}
		return regoOutcome(rs)
	}
	return fmt.Errorf("policy type %q", e.kind)
}

// regoOutcome reads isCompliant: a boolean, or policy-controller's object
// {result, error, warning}.
func regoOutcome(rs rego.ResultSet) error {
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return errors.New("rego: isCompliant is undefined")
	}
	switch v := rs[0].Expressions[0].Value.(type) {
	case bool:
		if v {
			return nil
		}
		return errors.New("rego: isCompliant is false")
	case map[string]any:
		if ok, _ := v["result"].(bool); ok {
			return nil
		}
		if msg, _ := v["error"].(string); msg != "" {
			return fmt.Errorf("rego: %s", msg)
		}
		return errors.New("rego: isCompliant.result is false")
	}
	return fmt.Errorf("rego: isCompliant is %T, want a boolean", rs[0].Expressions[0].Value)
}

// cueMessage flattens CUE's error list into one line.
func cueMessage(err error) string {
	var parts []string
	for _, e := range cueerrors.Errors(err) {
		parts = append(parts, strings.TrimSpace(e.Error()))
	}
	if len(parts) == 0 {
		return err.Error()
	}
	return strings.Join(parts, "; ")
}

// celEnv declares what a condition sees: the image, the keys that signed
// it, the predicate types of its verified attestations, its findings and
// licenses (when a report exists), and the time.
func celEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("image", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("signers", cel.ListType(cel.StringType)),
		cel.Variable("attestations", cel.ListType(cel.StringType)),
		cel.Variable("vulnerabilities", cel.ListType(cel.MapType(cel.StringType, cel.DynType))),
		cel.Variable("licenses", cel.ListType(cel.StringType)),
		cel.Variable("secrets", cel.ListType(cel.MapType(cel.StringType, cel.DynType))),
		cel.Variable("misconfigurations", cel.ListType(cel.MapType(cel.StringType, cel.DynType))),
		cel.Variable("scanned", cel.BoolType),
		cel.Variable("now", cel.TimestampType),
	)
}

// condition is a CEL expression that must be true.
type condition struct {
	name    string
	message string
	prog    cel.Program
	// needs says which facts the expression reads, so that an image is
	// not scanned or verified for a condition that does not look.
	needsReport, needsSigs bool
	// needsVulns: it reads what a vulnerability scan reports.
	needsVulns bool
	// needsScanners are the scanners the expression reads the findings
	// of besides vulnerabilities ("secret", "misconfig"): a report
	// without them fails the condition rather than reading as clean.
	needsScanners []string
}

func newCondition(name string, expr Text, message string) (*condition, error) {
	env, err := celEnv()
	if err != nil {
		return nil, err
	}
	ast, iss := env.Compile(expr.S)
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("%d: condition %s: %v", expr.Line, name, iss.Err())
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("%d: condition %s: the expression is %s, want bool", expr.Line, name, ast.OutputType())
	}
	prog, err := env.Program(ast, cel.CostLimit(1_000_000))
	if err != nil {
		return nil, fmt.Errorf("%d: condition %s: %v", expr.Line, name, err)
	}
	c := &condition{name: name, message: message, prog: prog}
	if strings.Contains(expr.S, "secrets") {
		c.needsScanners = append(c.needsScanners, scannerSecret)
	}
	if strings.Contains(expr.S, "misconfigurations") {
		c.needsScanners = append(c.needsScanners, scannerMisconfig)
	}
	c.needsVulns = strings.Contains(expr.S, "vulnerabilities") || strings.Contains(expr.S, "licenses") || strings.Contains(expr.S, "scanned")
	c.needsReport = c.needsVulns || len(c.needsScanners) > 0
	c.needsSigs = strings.Contains(expr.S, "signers") || strings.Contains(expr.S, "attestations")
	return c, nil
}

func (c *condition) eval(vars map[string]any) (bool, error) {
	out, _, err := c.prog.Eval(vars)
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("condition %s gave %v, want a boolean", c.name, out.Value())
	}
	return b, nil
}
