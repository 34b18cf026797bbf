package harrier.testjobs;

import java.util.ArrayList;
import java.util.List;

import org.apache.spark.sql.SparkSession;

/**
 * The small job Harrier's Spark tests submit. Arguments: count=N (rows to count, default 1000),
 * sleep=S (seconds to wait before starting Spark, so a test can kill a RUNNING driver);
 * anything else is echoed back on the result line.
 */
public final class CountJob {
    public static void main(String[] args) throws Exception {
        long count = 1000;
        long sleepSeconds = 0;
        List<String> echo = new ArrayList<>();
        for (String arg : args) {
            if (arg.startsWith("count=")) {
                count = Long.parseLong(arg.substring("count=".length()));
            } else if (arg.startsWith("sleep=")) {
                sleepSeconds = Long.parseLong(arg.substring("sleep=".length()));
            } else {
                echo.add(arg);
            }
        }
        if (sleepSeconds > 0) {
            System.out.println("HARRIER-JOB-SLEEPING seconds=" + sleepSeconds);
            System.out.flush();
            Thread.sleep(sleepSeconds * 1000L);
        }
        SparkSession spark = SparkSession.builder().appName("harrier-count-job").getOrCreate();
        try {
            long counted = spark.range(count).count();
            System.out.println("HARRIER-JOB-RESULT count=" + counted + " args=" + String.join(",", echo));
            System.out.flush();
        } finally {
            spark.stop();
        }
    }
}
