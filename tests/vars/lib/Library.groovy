import java.lang.annotation.Retention
import java.lang.annotation.RetentionPolicy

// Stand-in for Jenkins' @Library annotation, so a Jenkinsfile (`@Library('mltp') _`) parses.
@Retention(RetentionPolicy.SOURCE)
@interface Library {
    String[] value()
}
