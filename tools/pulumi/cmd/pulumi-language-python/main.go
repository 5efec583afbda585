// Command pulumi-language-python is a Python language host for the Pulumi engine.
//
// Pulumi's own host (module github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3) is not
// served by the Go module proxy these machines reach, so this is a small host built on the same SDK
// pieces it uses: the sdk's python/toolchain package finds the virtual environment named by the
// project's `runtime.options.virtualenv`, and the program is run by the sdk's own
// `pulumi-language-python-exec` script, installed beside this binary by scripts/install-pulumi.
//
// It implements what `pulumi preview/up/refresh/destroy` and the Automation API call: Handshake,
// GetPluginInfo, GetRequiredPackages (read from the `pulumi-plugin.json` files that Pulumi
// provider packages ship), Run, InstallDependencies (validates the environment; setup installs it),
// About and GetProgramDependencies. Code generation and Python plugins are not supported.
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	"github.com/pulumi/pulumi/sdk/v3/go/common/workspace"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// listPluginsScript prints, as JSON, the Pulumi plugins that installed Python packages declare.
//
//go:embed list_plugins.py
var listPluginsScript string

// userActionableExitCode is what pulumi-language-python-exec exits with after it has shown the user
// an error of the program's own; the engine is then told to bail rather than print a second error.
const userActionableExitCode = 32

func main() {
	if len(os.Args) < 2 {
		cmdutil.Exit(errors.New("usage: pulumi-language-python [flags] ENGINE_ADDRESS"))
	}
	engineAddress := os.Args[len(os.Args)-1]

	self, err := os.Executable()
	if err != nil {
		cmdutil.Exit(fmt.Errorf("locating this executable: %w", err))
	}
	execScript := filepath.Join(filepath.Dir(self), "pulumi-language-python-exec")
	if _, err := os.Stat(execScript); err != nil {
		cmdutil.Exit(fmt.Errorf("missing executor %s: run scripts/install-pulumi", execScript))
	}

	cancel := make(chan bool)
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: cancel,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, &host{engineAddress: engineAddress, execScript: execScript})
			return nil
		},
		Options: rpcutil.OpenTracingServerInterceptorOptions(nil),
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("starting the language host: %w", err))
	}
	// The engine reads the port from the first line of stdout.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("language host stopped: %w", err))
	}
}

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engineAddress string
	execScript    string

	// The engine asks for the required packages before a run, and Run checks them again: one
	// host process serves one operation, so the plugin list is read once per program directory.
	packagesMu sync.Mutex
	packages   map[string][]*pulumirpc.PackageDependency
}

// toolchainFor resolves the Python environment that a program's project asks for.
func toolchainFor(info *pulumirpc.ProgramInfo) (toolchain.Toolchain, error) {
	if info == nil {
		return nil, errors.New("the engine sent no program info")
	}
	options := toolchain.PythonOptions{Root: info.RootDirectory, ProgramDir: info.ProgramDirectory}
	if opts := info.Options.AsMap(); opts != nil {
		if venv, ok := opts["virtualenv"].(string); ok && venv != "" {
			if !filepath.IsAbs(venv) {
				venv = filepath.Join(info.RootDirectory, venv)
			}
			options.Virtualenv = venv
		}
		if name, ok := opts["toolchain"].(string); ok && name != "" && name != "pip" {
			return nil, fmt.Errorf("runtime option toolchain=%q is not supported by this language host: use pip", name)
		}
	}
	return toolchain.ResolveToolchain(options)
}

func (h *host) Handshake(
	context.Context, *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

type declaredPlugin struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Server  string `json:"server"`
}

func (h *host) requiredPackages(ctx context.Context, info *pulumirpc.ProgramInfo) ([]*pulumirpc.PackageDependency, error) {
	h.packagesMu.Lock()
	defer h.packagesMu.Unlock()
	if cached, ok := h.packages[info.GetProgramDirectory()]; ok {
		return cached, nil
	}
	tc, err := toolchainFor(info)
	if err != nil {
		return nil, err
	}
	cmd, err := tc.Command(ctx, "-c", listPluginsScript)
	if err != nil {
		return nil, err
	}
	cmd.Dir = info.ProgramDirectory
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing the plugins of installed Python packages: %w", err)
	}
	var declared []declaredPlugin
	if err := json.Unmarshal(out, &declared); err != nil {
		return nil, fmt.Errorf("reading the plugin list %q: %w", out, err)
	}
	packages := make([]*pulumirpc.PackageDependency, 0, len(declared))
	for _, p := range declared {
		packages = append(packages, &pulumirpc.PackageDependency{
			Name: p.Name, Kind: "resource", Version: p.Version, Server: p.Server,
		})
	}
	if h.packages == nil {
		h.packages = map[string][]*pulumirpc.PackageDependency{}
	}
	h.packages[info.ProgramDirectory] = packages
	return packages, nil
}

func (h *host) GetRequiredPackages(
	ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	packages, err := h.requiredPackages(ctx, req.Info)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: packages}, nil
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	tc, err := toolchainFor(req.Info)
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	packages, err := h.requiredPackages(ctx, req.Info)
	if err != nil {
		return nil, err
	}
	if missing := missingPlugins(packages); len(missing) > 0 {
		return &pulumirpc.RunResponse{Error: missingPluginsMessage(missing)}, nil
	}

	args := []string{
		"-u", h.execScript,
		"--monitor", req.MonitorAddress,
		"--engine", h.engineAddress,
		"--project", req.Project,
		"--stack", req.Stack,
		"--pwd", req.Pwd,
		"--dry_run", strconv.FormatBool(req.DryRun),
		"--parallel", strconv.Itoa(int(req.Parallel)),
		"--root_directory", req.Info.RootDirectory,
	}
	if req.Organization != "" {
		args = append(args, "--organization", req.Organization)
	}
	program := req.Info.EntryPoint
	if program == "" {
		program = "."
	}
	args = append(args, program)
	args = append(args, req.Args...)

	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return nil, err
	}
	// The executor expects a JSON object and a JSON list, never null.
	if req.Config == nil {
		req.Config = map[string]string{}
	}
	if req.ConfigSecretKeys == nil {
		req.ConfigSecretKeys = []string{}
	}
	config, err := json.Marshal(req.Config)
	if err != nil {
		return nil, err
	}
	secretKeys, err := json.Marshal(req.ConfigSecretKeys)
	if err != nil {
		return nil, err
	}
	cmd.Dir = req.Pwd
	cmd.Env = append(cmd.Env, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys))
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr

	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if exitErr.ExitCode() == userActionableExitCode {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d",
				exitErr.ExitCode())}, nil
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("Problem executing program (could not run language executor): %v", err)}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// missingPlugins returns the required resource plugins that are neither in the plugin cache
// ($PULUMI_HOME/plugins) nor on PATH. Checking before the program runs turns what would be a failure
// deep inside the first resource registration into one message naming every missing plugin.
func missingPlugins(packages []*pulumirpc.PackageDependency) []*pulumirpc.PackageDependency {
	pluginsDir := ""
	if home, err := workspace.GetPulumiHomeDir(); err == nil {
		pluginsDir = filepath.Join(home, "plugins")
	}
	var missing []*pulumirpc.PackageDependency
	for _, p := range packages {
		binary := "pulumi-resource-" + p.Name
		if _, err := os.Stat(filepath.Join(pluginsDir, "resource-"+p.Name+"-"+p.Version, binary)); err == nil {
			continue
		}
		if _, err := exec.LookPath(binary); err == nil {
			continue
		}
		missing = append(missing, p)
	}
	return missing
}

func missingPluginsMessage(missing []*pulumirpc.PackageDependency) string {
	var b strings.Builder
	b.WriteString("this program needs Pulumi provider plugins that are not installed: ")
	for i, p := range missing {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s", p.Name, p.Version)
	}
	b.WriteString(". Install them on a machine with internet access, for example:")
	for _, p := range missing {
		fmt.Fprintf(&b, "\n    pulumi plugin install resource %s %s", p.Name, strings.TrimPrefix(p.Version, "v"))
	}
	b.WriteString("\n(or copy that machine's $PULUMI_HOME/plugins directory here, or put pulumi-resource-<name> on PATH)")
	return b.String()
}

func (h *host) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	tc, err := toolchainFor(req.Info)
	if err != nil {
		return err
	}
	if err := tc.ValidateVenv(server.Context()); err != nil {
		return fmt.Errorf("%w (this project's environment is made by scripts/setup)", err)
	}
	return nil
}

func (h *host) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	tc, err := toolchainFor(req.Info)
	if err != nil {
		return nil, err
	}
	info, err := tc.About(ctx)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{
		Executable: info.PythonExecutable,
		Version:    info.PythonVersion.String(),
		Metadata:   map[string]string{"toolchain": "pip"},
	}, nil
}

func (h *host) GetProgramDependencies(
	ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	tc, err := toolchainFor(req.Info)
	if err != nil {
		return nil, err
	}
	packages, err := tc.ListPackages(ctx, req.TransitiveDependencies)
	if err != nil {
		return nil, err
	}
	deps := make([]*pulumirpc.DependencyInfo, 0, len(packages))
	for _, p := range packages {
		deps = append(deps, &pulumirpc.DependencyInfo{Name: p.Name, Version: p.Version})
	}
	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: deps}, nil
}
