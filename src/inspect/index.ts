// Read-only looks at an image: structure tests (container-structure-test's format), layer waste as
// dive computes it, and a hardening audit. Nothing here changes the image or the store.

export { openImage, layersOf, type OpenedImage } from './image.js';
export { parseStructureConfig, readStructureConfig, goRegExp, StructureConfigInvalid, type StructureConfig } from './structure/config.js';
export { runStructureTests, goFileMode, type StructureReport, type TestResult, type UnreadableConfig } from './structure/run.js';
export { formatReport, reportFormats, type ReportFormat } from './structure/report.js';
export { analyzeImage, checkCi, defaultCiRules, formatAnalysis, humanBytes, layerInstruction, parseBytes, parseCiRules, type CiResult, type CiRules, type ImageAnalysis, type LayerReport, type LayerChange } from './analyze.js';
export { auditImage, auditChecks, auditSeverities, formatAudit, type AuditFinding, type AuditSeverity } from './audit.js';
