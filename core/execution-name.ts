/**
 * The characters Step Functions takes in a name — an execution's, a state machine's, and so a job
 * id: none of whitespace, brackets, wildcards, `"#%\^|~`$&,;:/` or control characters. Written
 * once as a pattern, so that the API, the embedded engine and the OpenAPI document agree.
 */
export const EXECUTION_NAME_PATTERN = '^[^\\s<>{}[\\]?*"#%\\\\^|~`$&,;:/\\u0000-\\u001f\\u007f-\\u009f]+$';

const NAME = new RegExp(EXECUTION_NAME_PATTERN, "u");

/** Whether `name` is non-empty and holds only characters Step Functions takes in a name. */
export const hasNameCharactersOnly = (name: string): boolean => NAME.test(name);
