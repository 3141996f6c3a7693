/** What the IAM commands are about. */
export interface IamStepsInput {
  project: string;
  /** When unknown, the first command looks it up into the shell variable `PROJECT_NUMBER`. */
  projectNumber?: string | undefined;
  pushServiceAccount: string;
  deadLetterTopics: readonly string[];
  pushSubscriptions: readonly string[];
}

// Only characters that need no quoting in a POSIX shell pass unquoted.
const sh = (s: string) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/**
 * The gcloud commands that give the Pub/Sub service agent
 * (`service-PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com`) what authenticated pushes and
 * dead-lettering need: Token Creator on the push service account (to sign its OIDC tokens),
 * publisher on each dead-letter topic, subscriber on each push subscription (to forward from it).
 * Printed, not run: granting needs the project number and IAM rights the deployer may not have.
 */
export function pubsubServiceAgentSteps(input: IamStepsInput): string[] {
  const steps: string[] = [];
  // A shell variable, set by the first command, when the number is not known here.
  const number = input.projectNumber ?? "$PROJECT_NUMBER";
  if (input.projectNumber === undefined) {
    steps.push(
      `PROJECT_NUMBER=$(gcloud projects describe ${sh(input.project)} --format='value(projectNumber)')`,
    );
  }
  const agent = `serviceAccount:service-${number}@gcp-sa-pubsub.iam.gserviceaccount.com`;
  // Double quotes keep $PROJECT_NUMBER expandable.
  const member = `--member="${agent}"`;
  const project = `--project=${sh(input.project)}`;
  steps.push(
    `gcloud iam service-accounts add-iam-policy-binding ${sh(input.pushServiceAccount)} ${project} ${member} --role=roles/iam.serviceAccountTokenCreator`,
  );
  for (const topic of input.deadLetterTopics) {
    steps.push(
      `gcloud pubsub topics add-iam-policy-binding ${sh(topic)} ${project} ${member} --role=roles/pubsub.publisher`,
    );
  }
  for (const sub of input.pushSubscriptions) {
    steps.push(
      `gcloud pubsub subscriptions add-iam-policy-binding ${sh(sub)} ${project} ${member} --role=roles/pubsub.subscriber`,
    );
  }
  return steps;
}
