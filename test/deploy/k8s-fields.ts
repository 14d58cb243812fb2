import ts from 'typescript';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/**
 * kubernetes-models validates types and required fields but lets unknown fields through, and a
 * misspelt field (`readinessprobe`, `restartpolicy`) is silently ignored by the API server too. This
 * checks every field name against the TypeScript interfaces kubernetes-models ships, walking
 * them with the TypeScript compiler's checker.
 */

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const KIND_TYPES: Record<string, [module: string, type: string]> = {
  Namespace: ['kubernetes-models/v1/Namespace', 'INamespace'],
  ConfigMap: ['kubernetes-models/v1/ConfigMap', 'IConfigMap'],
  Secret: ['kubernetes-models/v1/Secret', 'ISecret'],
  Service: ['kubernetes-models/v1/Service', 'IService'],
  StatefulSet: ['kubernetes-models/apps/v1/StatefulSet', 'IStatefulSet'],
  Deployment: ['kubernetes-models/apps/v1/Deployment', 'IDeployment'],
  NetworkPolicy: ['kubernetes-models/networking.k8s.io/v1/NetworkPolicy', 'INetworkPolicy'],
  PodDisruptionBudget: ['kubernetes-models/policy/v1/PodDisruptionBudget', 'IPodDisruptionBudget'],
};

export class FieldChecker {
  private readonly checker: ts.TypeChecker;
  private readonly kinds = new Map<string, ts.Type>();

  constructor() {
    const file = join(REPO, 'test/deploy/__kubernetes_kinds__.ts');
    const source =
      Object.entries(KIND_TYPES)
        .map(([kind, [mod, type]]) => `import type { ${type} as ${kind} } from '${mod}';`)
        .join('\n') + `\nexport interface Kinds { ${Object.keys(KIND_TYPES).map((k) => `${k}: ${k};`).join(' ')} }\n`;
    const options: ts.CompilerOptions = {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      strict: true,
      skipLibCheck: true,
      noEmit: true,
      types: [],
    };
    const host = ts.createCompilerHost(options);
    const getSourceFile = host.getSourceFile.bind(host);
    host.getSourceFile = (name, lang, ...rest) => (name === file ? ts.createSourceFile(name, source, lang) : getSourceFile(name, lang, ...rest));
    const fileExists = host.fileExists.bind(host);
    host.fileExists = (name) => name === file || fileExists(name);
    const program = ts.createProgram([file], options, host);
    const errors = ts.getPreEmitDiagnostics(program, program.getSourceFile(file));
    if (errors.length > 0) throw new Error(ts.formatDiagnostics(errors, host));
    this.checker = program.getTypeChecker();
    const sf = program.getSourceFile(file)!;
    const kindsSymbol = this.checker.getSymbolAtLocation(sf)!.exports!.get(ts.escapeLeadingUnderscores('Kinds'))!;
    const kindsType = this.checker.getDeclaredTypeOfSymbol(kindsSymbol);
    for (const prop of kindsType.getProperties()) this.kinds.set(prop.name, this.checker.getTypeOfSymbol(prop));
  }

  /** Paths of unknown fields in `object` (of its `kind`), e.g. `spec.template.spec.containers[0].readinessprobe`. */
  unknownFields(object: { kind?: unknown }): string[] {
    const type = this.kinds.get(String(object.kind));
    if (!type) return [`(kind ${JSON.stringify(object.kind)} is not one the manifests use)`];
    const out: string[] = [];
    this.walk(object, type, '', out);
    return out;
  }

  private members(type: ts.Type): ts.Type[] {
    const t = this.checker.getNonNullableType(type);
    return t.isUnion() ? t.types : [t];
  }

  private walk(value: unknown, type: ts.Type, path: string, out: string[]): void {
    if (value === null || typeof value !== 'object') return;
    const members = this.members(type);
    if (Array.isArray(value)) {
      const element = members.map((m) => this.checker.getIndexTypeOfType(m, ts.IndexKind.Number)).find((t) => t !== undefined);
      if (!element) {
        out.push(`${path}: an array where the schema has none`);
        return;
      }
      value.forEach((v, i) => this.walk(v, element, `${path}[${i}]`, out));
      return;
    }
    const objects = members.filter((m) => (m.flags & ts.TypeFlags.Object) !== 0);
    if (objects.length === 0) {
      out.push(`${path}: an object where the schema has ${this.checker.typeToString(type)}`);
      return;
    }
    for (const [key, v] of Object.entries(value)) {
      const here = path ? `${path}.${key}` : key;
      let propType: ts.Type | undefined;
      for (const m of objects) {
        const prop = m.getProperty(key);
        propType = prop ? this.checker.getTypeOfSymbol(prop) : this.checker.getIndexTypeOfType(m, ts.IndexKind.String);
        if (propType) break;
      }
      if (!propType) out.push(here);
      else this.walk(v, propType, here, out);
    }
  }
}
