package harrier.testjobs;

/** A driver that fails on purpose with a message the tests look for. */
public final class FailJob {
    public static void main(String[] args) {
        System.out.println("HARRIER-JOB-STARTING");
        System.out.flush();
        throw new IllegalStateException("HARRIER-JOB-FAILURE: deliberate failure for tests");
    }
}
